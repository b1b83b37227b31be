/**
 * The LoRA adapter alone as llama.cpp's adapter GGUF, applied by llama.cpp to a GGUF of the base:
 * the demo's identity adapter on the tiny chat model gives loraforge's greedy replies, and a random
 * rsLoRA adapter on a random Llama (q/k rows permuted for llama.cpp's RoPE) gives its logits.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { GgufReader } from '../../src/io/gguf/reader.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { saveAdapter } from '../../src/peft/io.ts';
import {
  addByteTokenizer,
  IDENTITY_ADAPTER,
  loraforge,
  loraforgeLogits,
  maxLogitDiff,
  MIXED_QUESTIONS,
  PROBE_TOKENS,
  RANDOM_LLAMA,
  randomLoraAdapter,
  sameGreedyReplies,
  TINY_CHAT,
} from './fixtures.ts';
import { loadGguf } from './llama-cpp.ts';

let dir: string;
before(async () => {
  await selectBackend({ device: 'cpu' });
  dir = mkdtempSync(join(tmpdir(), 'lf-gguf-adapter-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): void {
  const r = loraforge(args);
  assert.equal(r.status, 0, r.stderr);
}

test('identity adapter GGUF on the f16 base GGUF: 20/20 greedy replies equal loraforge base + adapter', async () => {
  const base = join(dir, 'tiny-f16.gguf');
  const lora = join(dir, 'identity-lora.gguf');
  run(['export', '-m', TINY_CHAT, '--type', 'f16', '-o', base]);
  run(['export', '-m', TINY_CHAT, '-a', IDENTITY_ADAPTER, '--format', 'gguf-adapter', '-o', lora]);
  const file = GgufReader.open(lora);
  assert.equal(file.scalar('general.type'), 'adapter');
  assert.equal(file.scalar('adapter.type'), 'lora');
  assert.equal(file.scalar('adapter.lora.alpha'), 16);
  assert.deepEqual(file.tensor('blk.0.ffn_down.weight.lora_a').shape, [8, 640]);
  assert.deepEqual(file.tensor('blk.0.ffn_down.weight.lora_b').shape, [256, 8]);

  const pipeline = await ChatPipeline.load({ model: TINY_CHAT, adapter: IDENTITY_ADAPTER });
  const gguf = await loadGguf(base, { lora });
  const same = await sameGreedyReplies(pipeline, gguf, MIXED_QUESTIONS, 24);
  await gguf.dispose();
  pipeline.dispose();
  assert.equal(same, 20, `${same}/20 greedy replies identical`);
});

test('random rsLoRA adapter on a random Llama: llama.cpp base + adapter logits within 1e-3', async () => {
  const modelDir = join(dir, 'llama');
  writeRandomModel(modelDir, RANDOM_LLAMA, { seed: 5, std: 0.2 });
  addByteTokenizer(modelDir, 319);
  const model = loadModel(modelDir, { dtype: 'f32' });
  const adapter = randomLoraAdapter(model, { r: 4, loraAlpha: 8, useRslora: true, seed: 1 });
  const adapterDir = join(dir, 'llama-lora');
  await saveAdapter(adapterDir, adapter);
  adapter.attach(model);
  const ours = loraforgeLogits(model, PROBE_TOKENS);
  const vocab = model.config.vocabSize;
  const base = join(dir, 'llama-f32.gguf');
  const lora = join(dir, 'llama-lora.gguf');
  run(['export', '-m', modelDir, '--type', 'f32', '-o', base]);
  run([
    'export',
    '-m',
    modelDir,
    '-a',
    adapterDir,
    '--format',
    'gguf-adapter',
    '--type',
    'f32',
    '-o',
    lora,
  ]);
  const gguf = await loadGguf(base, { lora });
  const theirs = await gguf.logits(PROBE_TOKENS, vocab);
  await gguf.dispose();
  const diff = maxLogitDiff(theirs, ours);
  console.log(`random llama + rsLoRA: max |logit diff| ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-3, `${diff}`);
});
