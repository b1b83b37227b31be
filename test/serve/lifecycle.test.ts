// Scheduling seen from HTTP clients: batching, disconnects, back-pressure, shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import { FakeEngine } from './fake-engine.ts';
import { createServer, type ServeOptions } from '../../src/serve/server.ts';

async function start(engine: FakeEngine, options: ServeOptions = {}) {
  const server = createServer(engine, options);
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, base: `http://127.0.0.1:${port}` };
}

const completion = (base: string, fields: Record<string, unknown> = {}) =>
  fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'fake-base', prompt: 'p', ...fields }),
  });

const waitUntil = async (condition: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !condition(); i++)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(condition(), `timed out waiting until ${what}`);
};

test('concurrent clients are decoded together in one step', async () => {
  const engine = new FakeEngine({ reply: () => 'a'.repeat(30), stepDelayMs: 2 });
  const { server, base } = await start(engine, { maxBatch: 8 });
  const responses = await Promise.all(Array.from({ length: 6 }, () => completion(base)));
  for (const res of responses)
    assert.equal(((await res.json()) as any).choices[0].text, 'a'.repeat(30));
  assert.ok(engine.maxBatchSeen() > 1, `largest batch was ${engine.maxBatchSeen()}`);
  assert.ok(engine.maxBatchSeen() <= 8);
  await server.close();
});

test('a client disconnecting mid-stream releases its sequence at once', async () => {
  const engine = new FakeEngine({ reply: () => 'b'.repeat(100_000), stepDelayMs: 1 });
  const { server, base } = await start(engine);
  const req = http.request(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
  });
  req.end(
    JSON.stringify({
      model: 'fake-base',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
    }),
  );
  const res = await new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
  assert.equal(res.headers['content-type'], 'text/event-stream');
  await new Promise((resolve) => res.once('data', resolve));
  assert.equal(engine.live.size, 1);
  req.destroy();
  await waitUntil(() => engine.live.size === 0, 'the sequence is released');
  assert.equal(engine.releasedCount, 1);
  assert.equal(server.scheduler.activeCount, 0);
  await server.close();
});

test('a full queue answers 429 and the accepted requests still complete', async () => {
  const engine = new FakeEngine({ reply: () => 'c'.repeat(300), stepDelayMs: 2 });
  const { server, base } = await start(engine, { maxBatch: 1, maxQueue: 1 });
  const statuses = await Promise.all(
    Array.from({ length: 4 }, () => completion(base).then((r) => r.status)),
  );
  assert.deepEqual(statuses.sort(), [200, 200, 429, 429]);
  await server.close();
});

test('close() lets running requests finish within the grace period and refuses new ones', async () => {
  const engine = new FakeEngine({ reply: () => 'd'.repeat(20), stepDelayMs: 2 });
  const { server, base } = await start(engine, { shutdownGraceMs: 5000 });
  const running = completion(base);
  await waitUntil(() => engine.live.size === 1, 'the request runs');
  const closed = server.close();
  const res = await running;
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as any).choices[0].text, 'd'.repeat(20));
  await closed;
  await assert.rejects(completion(base));
});

test('close() cancels requests still running when the grace period ends', async () => {
  const engine = new FakeEngine({ reply: () => 'e'.repeat(100_000), stepDelayMs: 1 });
  const { server, base } = await start(engine, { shutdownGraceMs: 50 });
  const running = completion(base);
  await waitUntil(() => engine.live.size === 1, 'the request runs');
  await server.close();
  const res = await running;
  assert.equal(res.status, 503);
  assert.equal(engine.live.size, 0);
});

test('the route alias answers {text} from the chosen model', async () => {
  const engine = new FakeEngine({ reply: (_prompt, adapter) => `[${adapter}] answer` });
  await engine.loadAdapter('legal', '/x');
  const { server, base } = await start(engine, {
    routeAlias: '/api/legal-assistant',
    routeAliasModel: 'legal',
  });
  const res = await fetch(`${base}/api/legal-assistant`, {
    method: 'POST',
    body: JSON.stringify({ prompt: 'Can I break my lease?', max_tokens: 50 }),
  });
  assert.deepEqual(await res.json(), { text: '[legal] answer' });
  assert.equal(
    (await fetch(`${base}/api/legal-assistant`, { method: 'POST', body: '{}' })).status,
    400,
  );
  await server.close();
});

test('an engine failure mid-stream ends the stream with an error the openai client raises', async () => {
  const engine = new FakeEngine({ reply: () => 'f'.repeat(100) });
  const realStep = engine.step.bind(engine);
  let steps = 0;
  engine.step = async (seqs) => {
    if (++steps === 3) throw new Error('device lost (expected by this test)');
    return realStep(seqs);
  };
  const { server, base } = await start(engine);
  const client = new OpenAI({ apiKey: 'unused', baseURL: `${base}/v1`, maxRetries: 0 });
  const stream = await client.chat.completions.create({
    model: 'fake-base',
    messages: [{ role: 'user', content: 'Hi' }],
    stream: true,
  });
  let text = '';
  await assert.rejects(async () => {
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  }, /server had an error/);
  assert.equal(text, 'ff');
  assert.equal(engine.live.size, 0);
  await server.close();
});
