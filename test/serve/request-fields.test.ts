/**
 * Sampling fields are checked against their range (named in the 400), and fields the server does
 * not implement (tools, logprobs, response_format other than text) are refused by name instead of
 * being ignored. Driven with the `openai` client, as a real client would send them.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { FakeEngine } from './fake-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';

const engine = new FakeEngine({ reply: () => 'ok' });
let server: LoraforgeServer;
let client: OpenAI;

before(async () => {
  server = createServer(engine);
  const { port } = await server.listen(0, '127.0.0.1');
  client = new OpenAI({ apiKey: 'unused', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
});

after(() => server.close());

const messages = [{ role: 'user' as const, content: 'Hi' }];

async function refused(
  fields: Record<string, unknown>,
  param: string,
  message: RegExp,
  kind: 'chat' | 'text' = 'chat',
): Promise<void> {
  const request =
    kind === 'chat'
      ? client.chat.completions.create({ model: 'fake-base', messages, ...fields } as never)
      : client.completions.create({ model: 'fake-base', prompt: 'Hi', ...fields } as never);
  await assert.rejects(request, (err: unknown) => {
    assert.ok(err instanceof OpenAI.BadRequestError, String(err));
    assert.equal(err.param, param);
    assert.match(err.message, message);
    return true;
  });
}

test('sampling values outside their range are a 400 naming the field and the range', async () => {
  await refused({ temperature: -1 }, 'temperature', /\[0, 2\]/);
  await refused({ top_p: 0 }, 'top_p', /\(0, 1\]/);
  await refused({ top_k: -3 }, 'top_k', /whole number >= 0/);
  await refused({ top_k: 2.5 }, 'top_k', /whole number/);
  await refused({ repetition_penalty: 0 }, 'repetition_penalty', /\(0, 2\]/);
  await refused({ presence_penalty: 3 }, 'presence_penalty', /\[-2, 2\]/);
  await refused({ frequency_penalty: -2.5 }, 'frequency_penalty', /\[-2, 2\]/, 'text');
});

test('every supported sampling field is accepted', async () => {
  const reply = await client.chat.completions.create({
    model: 'fake-base',
    messages,
    temperature: 0.5,
    top_p: 0.9,
    presence_penalty: 0.5,
    frequency_penalty: 0.5,
    seed: 7,
    // vLLM's extra fields; top_k -1 is its "off".
    ...({ top_k: -1, repetition_penalty: 1.1 } as object),
  });
  assert.equal(reply.choices[0]!.message.content, 'ok');
});

test('tools, logprobs and non-text response_format are refused by name', async () => {
  const tool = { type: 'function', function: { name: 'f', parameters: { type: 'object' } } };
  await refused({ tools: [tool] }, 'tools', /tool calling/);
  await refused({ logprobs: true }, 'logprobs', /not supported/);
  await refused({ logprobs: true, top_logprobs: 2 }, 'logprobs', /not supported/);
  await refused({ logprobs: 3 }, 'logprobs', /not supported/, 'text');
  await refused({ response_format: { type: 'json_object' } }, 'response_format', /json_object/);
  // What changes nothing is accepted: empty tools, logprobs false, text format.
  const reply = await client.chat.completions.create({
    model: 'fake-base',
    messages,
    tools: [],
    logprobs: false,
    response_format: { type: 'text' },
  });
  assert.equal(reply.choices[0]!.message.content, 'ok');
});
