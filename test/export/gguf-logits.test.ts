/**
 * f32 GGUF exports read by llama.cpp give loraforge's logits within 1e-3: the golden Qwen2 model
 * (made with transformers) and a random Llama with Llama 3 RoPE scaling and untied head (made by
 * loraforge), both with a byte-level tokenizer added so that llama.cpp can load them.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { GgufReader } from '../../src/io/gguf/reader.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { GOLDEN } from '../helpers.ts';
import {
  addByteTokenizer,
  loraforge,
  loraforgeLogits,
  maxLogitDiff,
  PROBE_TOKENS,
  RANDOM_LLAMA,
} from './fixtures.ts';
import { loadGguf } from './llama-cpp.ts';

const GOLDEN_QWEN2 = join(GOLDEN, 'qwen2-tiny');

let dir: string;
before(async () => {
  await selectBackend({ device: 'cpu' });
  dir = mkdtempSync(join(tmpdir(), 'lf-gguf-logits-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function llamaCppDiff(modelDir: string, tokens: number[]): Promise<number> {
  const out = join(modelDir, 'model-f32.gguf');
  const r = loraforge(['export', '-m', modelDir, '--type', 'f32', '-o', out]);
  assert.equal(r.status, 0, r.stderr);
  const model = loadModel(modelDir, { dtype: 'f32' });
  const ours = loraforgeLogits(model, tokens);
  const vocab = model.config.vocabSize;
  model.dispose();
  const gguf = await loadGguf(out);
  const theirs = await gguf.logits(tokens, vocab);
  await gguf.dispose();
  return maxLogitDiff(theirs, ours);
}

test('golden qwen2-tiny (transformers) as f32 GGUF: llama.cpp logits within 1e-3 of loraforge', async () => {
  const modelDir = join(dir, 'qwen2');
  mkdirSync(modelDir);
  for (const f of ['config.json', 'model.safetensors'])
    copyFileSync(join(GOLDEN_QWEN2, f), join(modelDir, f));
  addByteTokenizer(modelDir, 999);
  const diff = await llamaCppDiff(modelDir, PROBE_TOKENS);
  console.log(`qwen2-tiny: max |logit diff| ${diff.toExponential(2)}`);
  assert.ok(diff < 1e-3, `${diff}`);
});

test('random Llama (llama3 RoPE scaling, untied head) as f32 GGUF: logits within 1e-3', async () => {
  const modelDir = join(dir, 'llama');
  writeRandomModel(modelDir, RANDOM_LLAMA, { seed: 3, std: 0.2 });
  addByteTokenizer(modelDir, 319);
  const diff = await llamaCppDiff(modelDir, PROBE_TOKENS);
  console.log(`random llama: max |logit diff| ${diff.toExponential(2)}`);
  const file = GgufReader.open(join(modelDir, 'model-f32.gguf'));
  assert.equal(file.scalar('general.architecture'), 'llama');
  assert.deepEqual(file.tensor('rope_freqs.weight').shape, [8]);
  assert.ok(file.tensors.some((t) => t.name === 'output.weight'));
  assert.ok(diff < 1e-3, `${diff}`);
});
