/**
 * PEFT-made adapters (test/fixtures/peft/tiny-chat-*) on the shipped tiny chat model give PEFT's
 * greedy continuation through `loraforge generate` and through the server (per-request adapter,
 * beside base-model requests); a refused adapter_config.json fails the CLI naming the field.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { ModelServeEngine } from '../../src/serve/model-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';
import { useCpuBackend } from '../helpers.ts';
import { expectedOf, PEFT_FIXTURES } from '../peft/peft-fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'loraforge.js');
const TINY_CHAT = join(ROOT, 'assets', 'tiny-chat');
const PROMPT = 'The sky is';
const CASES = ['tiny-chat-dora', 'tiny-chat-bias'];

/** PEFT's greedy ids as text, cut where loraforge stops (the tokenizer's end-of-sequence id). */
async function expectedText(name: string): Promise<string> {
  const tokenizer = await loadTokenizer(TINY_CHAT);
  const { prompt, greedy } = expectedOf(name);
  assert.deepEqual(tokenizer.encode(PROMPT), prompt, 'the fixture was made from this prompt');
  const stop = greedy.indexOf(tokenizer.eosTokenId ?? -1);
  return tokenizer.decode(stop < 0 ? greedy : greedy.slice(0, stop), { skipSpecialTokens: true });
}

function generate(adapter: string) {
  const r = spawnSync(
    process.execPath,
    [
      BIN,
      'generate',
      '--model',
      TINY_CHAT,
      '--adapter',
      adapter,
      '--raw',
      '--prompt',
      PROMPT,
    ].concat(['--max-new-tokens', '12', '--dtype', 'f32', '--device', 'cpu']),
    { encoding: 'utf8', timeout: 120_000 },
  );
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

for (const name of CASES) {
  test(`loraforge generate with the PEFT adapter "${name}" continues as PEFT does`, async () => {
    const r = generate(join(PEFT_FIXTURES, name));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trimEnd(), (await expectedText(name)).trimEnd());
  });
}

test('loraforge generate refuses an adapter_config.json field it does not implement, by name', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'lf-cli-peft-')), 'adapter');
  cpSync(join(PEFT_FIXTURES, 'tiny-chat-bias'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, lora_bias: true }));
  const r = generate(dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /lora_bias = true is not supported/);
});

let server: LoraforgeServer;
let base: ChatPipeline;
let url: string;

before(async () => {
  await useCpuBackend();
  base = await ChatPipeline.load({ model: TINY_CHAT, dtype: 'f32' });
  const engine = new ModelServeEngine(base, 'tiny-chat');
  for (const name of CASES) await engine.loadAdapter(name, join(PEFT_FIXTURES, name));
  server = createServer(engine, { maxBatch: 4 });
  const { port } = await server.listen(0, '127.0.0.1');
  url = `http://127.0.0.1:${port}/v1/completions`;
});

after(async () => {
  await server?.close();
  base?.dispose();
});

test('the server applies each PEFT adapter per request, batched with base-model requests', async () => {
  const complete = async (model: string) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, prompt: PROMPT, max_tokens: 12, temperature: 0 }),
    });
    const body = (await response.json()) as { choices: { text: string }[] };
    return body.choices[0]!.text;
  };
  const texts = await Promise.all([...CASES, 'tiny-chat'].map(complete));
  for (const [i, name] of CASES.entries()) {
    assert.equal(texts[i]!.trimEnd(), (await expectedText(name)).trimEnd(), name);
  }
  assert.notEqual(texts[0], texts[2], 'the adapter changes the continuation');
});
