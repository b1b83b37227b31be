/**
 * Adapters made by real PEFT 0.18.1 (scripts/peft-fixtures/make_fixtures.py) for each LoraConfig
 * option: loraforge loads them with nothing left over and reproduces PEFT's logits and greedy ids.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { SequenceDecoder } from '../../src/infer/sequences.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { maxAbsDiff, readGolden, useCpuBackend } from '../helpers.ts';

export const PEFT_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'peft');

export const CASES = [
  'suffix-targets',
  'regex-lm-head',
  'bias-all',
  'bias-lora-only',
  'modules-to-save-lm-head',
  'modules-to-save-embed',
  'patterns',
  'layers-to-transform',
  'exclude-modules',
  'embedding-lora',
  'lm-head-lora-untied',
  'lm-head-lora-tied',
  'dora',
  'rslora',
];

interface Expected {
  base: string;
  prompt: number[];
  greedy: number[];
}

export function expectedOf(name: string): Expected {
  return JSON.parse(readFileSync(join(PEFT_FIXTURES, name, 'expected.json'), 'utf8')) as Expected;
}

const bases = new Map<string, DecoderModel>();
export function baseOf(name: string): DecoderModel {
  const base = expectedOf(name).base;
  if (!bases.has(base)) bases.set(base, loadModel(join(PEFT_FIXTURES, base), { dtype: 'f32' }));
  return bases.get(base)!;
}

/** Logits [prompt, vocab] of the attached model. */
export function promptLogits(model: DecoderModel, prompt: number[]): Float32Array {
  return noGrad(() =>
    tidy(() => {
      const h = model.forwardHidden({
        batch: 1,
        seq: prompt.length,
        inputIds: Int32Array.from(prompt),
      });
      return model.logits(h).readSync() as Float32Array;
    }),
  );
}

/** Greedy continuation through the KV-cache decoder (the path `generate` and `serve` use). */
export async function greedy(model: DecoderModel, prompt: number[], n: number): Promise<number[]> {
  const decoder = new SequenceDecoder(model);
  const seq = decoder.start(prompt, { temperature: 0 }, null, n);
  const out: number[] = [];
  while (out.length < n) {
    const [token] = await decoder.step([seq]);
    if (token !== null && token !== undefined) out.push(token);
  }
  decoder.release(seq);
  return out;
}

before(async () => {
  await useCpuBackend();
});

for (const name of CASES) {
  test(`PEFT adapter "${name}" loads exactly and reproduces PEFT's logits and greedy ids`, async () => {
    const model = baseOf(name);
    const expected = expectedOf(name);
    const adapter = loadAdapter(join(PEFT_FIXTURES, name), model);
    adapter.attach(model);
    try {
      const logits = promptLogits(model, expected.prompt);
      const ref = readGolden(join(PEFT_FIXTURES, name, 'expected.safetensors')).f32('logits').data;
      const diff = maxAbsDiff(logits, ref);
      assert.ok(diff <= 1e-5, `logits differ by ${diff}`);
      assert.deepEqual(await greedy(model, expected.prompt, expected.greedy.length), expected.greedy);
    } finally {
      LoraAdapter.detach(model);
      adapter.dispose();
    }
  });
}
