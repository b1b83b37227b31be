// The official `openai` npm client against the server: what real clients will do.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { FakeEngine } from './fake-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';

const engine = new FakeEngine({ reply: (_prompt, adapter) => `Hello from ${adapter ?? 'base'}!` });
let server: LoraforgeServer;
let client: OpenAI;

before(async () => {
  await engine.loadAdapter('legal', '/adapters/legal');
  server = createServer(engine, { apiKey: 'sk-test' });
  const { port } = await server.listen(0, '127.0.0.1');
  client = new OpenAI({ apiKey: 'sk-test', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
});

after(() => server.close());

test('models lists the base model and loaded adapters', async () => {
  const ids: string[] = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.deepEqual(ids, ['fake-base', 'legal']);
});

test('chat completion with usage', async () => {
  const completion = await client.chat.completions.create({
    model: 'fake-base',
    messages: [{ role: 'user', content: 'Hi' }],
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.model, 'fake-base');
  assert.equal(completion.choices[0]!.message.role, 'assistant');
  assert.equal(completion.choices[0]!.message.content, 'Hello from base!');
  assert.equal(completion.choices[0]!.finish_reason, 'stop');
  const promptTokens = engine.encodeChat([{ role: 'user', content: 'Hi' }], null).length;
  assert.deepEqual(completion.usage, {
    prompt_tokens: promptTokens,
    completion_tokens: 17, // 16 characters + EOS
    total_tokens: promptTokens + 17,
  });
});

test('the model field selects an adapter', async () => {
  const completion = await client.chat.completions.create({
    model: 'legal',
    messages: [{ role: 'user', content: 'Hi' }],
  });
  assert.equal(completion.choices[0]!.message.content, 'Hello from legal!');
  assert.equal(completion.model, 'legal');
});

test('max_tokens cuts the reply with finish_reason length; stop strings are trimmed', async () => {
  const short = await client.chat.completions.create({
    model: 'fake-base',
    messages: [{ role: 'user', content: 'Hi' }],
    max_tokens: 5,
  });
  assert.equal(short.choices[0]!.message.content, 'Hello');
  assert.equal(short.choices[0]!.finish_reason, 'length');

  const stopped = await client.chat.completions.create({
    model: 'fake-base',
    messages: [{ role: 'user', content: 'Hi' }],
    stop: ['from', 'zzz'],
    temperature: 0.7,
    top_p: 0.9,
    seed: 42,
  });
  assert.equal(stopped.choices[0]!.message.content, 'Hello ');
  assert.equal(stopped.choices[0]!.finish_reason, 'stop');
});

test('streaming chat: role chunk, content deltas, finish chunk, usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'legal',
    messages: [{ role: 'user', content: 'Hi' }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.equal(chunks[0]!.object, 'chat.completion.chunk');
  assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
  const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  assert.equal(content, 'Hello from legal!');
  const finish = chunks.at(-2)!;
  assert.equal(finish.choices[0]!.finish_reason, 'stop');
  const usage = chunks.at(-1)!;
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage!.completion_tokens, 18);
  assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
});

test('text completion, plain and streamed', async () => {
  const completion = await client.completions.create({
    model: 'fake-base',
    prompt: 'Once',
    max_tokens: 100,
  });
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices[0]!.text, 'Hello from base!');
  assert.equal(completion.usage!.prompt_tokens, 4);

  const stream = await client.completions.create({
    model: 'fake-base',
    prompt: 'Once',
    stream: true,
    stop: '!',
  });
  let text = '';
  let finishReason: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]!.text;
    finishReason = chunk.choices[0]!.finish_reason ?? finishReason;
  }
  assert.equal(text, 'Hello from base');
  assert.equal(finishReason, 'stop');
});

test('client errors surface as typed OpenAI errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'Hi' }] }),
    (err: unknown) => err instanceof OpenAI.NotFoundError && /nope/.test(err.message),
  );
  await assert.rejects(
    client.chat.completions.create({
      model: 'fake-base',
      messages: [{ role: 'user', content: 'Hi' }],
      n: 2,
    }),
    (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'n',
  );
  const wrongKey = new OpenAI({ apiKey: 'sk-wrong', baseURL: client.baseURL, maxRetries: 0 });
  await assert.rejects(wrongKey.models.list(), OpenAI.AuthenticationError);
});
