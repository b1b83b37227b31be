// Malformed and hostile requests over raw HTTP: every one gets an OpenAI-style error, none crashes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { FakeEngine } from './fake-engine.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';

const KEY = 'sk-test';
const engine = new FakeEngine({ maxContext: 64 });
let server: LoraforgeServer;
let base: string;

before(async () => {
  server = createServer(engine, { apiKey: KEY, maxBodyBytes: 1024 });
  const { port } = await server.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${port}`;
});

after(() => server.close());

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { error: Record<string, unknown> } };
}

const chat = (fields: Record<string, unknown>) =>
  post('/v1/chat/completions', {
    model: 'fake-base',
    messages: [{ role: 'user', content: 'Hi' }],
    ...fields,
  });

function assertError(
  res: { status: number; body: { error: Record<string, unknown> } },
  status: number,
  param?: string,
) {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(typeof res.body.error.message, 'string');
  if (param !== undefined) assert.equal(res.body.error.param, param);
}

test('malformed JSON and non-object bodies are 400', async () => {
  assertError(await post('/v1/chat/completions', '{"model": '), 400);
  assertError(await post('/v1/chat/completions', '[1,2]'), 400);
  assertError(await post('/v1/chat/completions', ''), 400);
});

test('missing fields and wrong types name the parameter', async () => {
  assertError(
    await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] }),
    400,
    'model',
  );
  assertError(await chat({ model: 7 }), 400, 'model');
  assertError(await chat({ messages: 'hi' }), 400, 'messages');
  assertError(await chat({ messages: [] }), 400, 'messages');
  assertError(
    await chat({ messages: [{ role: 'wizard', content: 'x' }] }),
    400,
    'messages[0].role',
  );
  assertError(await chat({ messages: [{ role: 'user', content: 5 }] }), 400, 'messages[0].content');
  assertError(await chat({ temperature: 'hot' }), 400, 'temperature');
  assertError(await chat({ temperature: 3 }), 400, 'temperature');
  assertError(await chat({ top_p: 0 }), 400, 'top_p');
  assertError(await chat({ max_tokens: 0 }), 400, 'max_tokens');
  assertError(await chat({ max_tokens: 1.5 }), 400, 'max_tokens');
  assertError(await chat({ seed: 'x' }), 400, 'seed');
  assertError(await chat({ stop: [1] }), 400, 'stop');
  assertError(await chat({ n: 3 }), 400, 'n');
  assertError(await chat({ stream: 'yes' }), 400, 'stream');
  assertError(await chat({ stream_options: { include_usage: true } }), 400, 'stream_options');
  assertError(
    await post('/v1/completions', { model: 'fake-base', prompt: ['a', 'b'] }),
    400,
    'prompt',
  );
});

test('a prompt longer than the context, or no room for max_tokens, is 400', async () => {
  const tooLong = await chat({ messages: [{ role: 'user', content: 'x'.repeat(100) }] });
  assertError(tooLong, 400);
  assert.equal(tooLong.body.error.code, 'context_length_exceeded');
  assertError(
    await post('/v1/completions', { model: 'fake-base', prompt: 'abc', max_tokens: 62 }),
    400,
    'max_tokens',
  );
  assert.equal(
    (await post('/v1/completions', { model: 'fake-base', prompt: 'abc', max_tokens: 61 })).status,
    200,
  );
});

test('unknown model and unknown route are 404, wrong method 405', async () => {
  const model = await chat({ model: 'gpt-4' });
  assertError(model, 404);
  assert.equal(model.body.error.code, 'model_not_found');
  assertError(await post('/v1/embeddings', {}), 404);
  const res = await fetch(`${base}/v1/chat/completions`, {
    headers: { authorization: `Bearer ${KEY}` },
  });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'POST');
});

test('a missing or wrong API key is 401; /health needs none', async () => {
  assertError(await post('/v1/chat/completions', {}, { authorization: '' }), 401);
  assertError(await post('/v1/chat/completions', {}, { authorization: 'Bearer sk-wrong' }), 401);
  assertError(await post('/v1/chat/completions', {}, { authorization: KEY }), 401);
  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { status: string }).status, 'ok');
});

test('a body over the limit is 413, declared or streamed', async () => {
  assertError(await post('/v1/chat/completions', 'x'.repeat(2000)), 413);
  // Chunked, so the server only learns the size while reading: it must stop at the limit.
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'transfer-encoding': 'chunked' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.write('x'.repeat(800));
    setTimeout(() => req.end('y'.repeat(800)), 20);
  });
  assert.equal(status, 413);
});

test('an engine rejecting the request content (LoraforgeError) is 400, any other failure 500', async (t) => {
  const encodeText = t.mock.method(engine, 'encodeText', (): number[] => {
    throw new LoraforgeError('prompt contains a reserved special token');
  });
  const rejected = await post('/v1/completions', { model: 'fake-base', prompt: '<|im_end|>' });
  assertError(rejected, 400);
  assert.match(rejected.body.error.message as string, /reserved special token/);
  encodeText.mock.mockImplementation(() => {
    throw new Error('bug (expected by this test)');
  });
  const failed = await post('/v1/completions', { model: 'fake-base', prompt: 'x' });
  assertError(failed, 500);
  assert.doesNotMatch(failed.body.error.message as string, /bug/);
});

test('the server keeps serving after all of that', async () => {
  const res = await post('/v1/completions', { model: 'fake-base', prompt: 'ok' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
});
