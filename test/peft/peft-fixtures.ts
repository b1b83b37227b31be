/** The PEFT-made interop fixtures (scripts/peft-fixtures/make_fixtures.py) and how tests run them. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { SequenceDecoder } from '../../src/infer/sequences.ts';
import type { DecoderModel, LoraLookup } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { maxAbsDiff, readGolden } from '../helpers.ts';

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
  'pissa',
  'olora',
  'tiny-chat-dora',
  'tiny-chat-bias',
];

interface Expected {
  base: string;
  prompt: number[];
  greedy: number[];
}

export function expectedOf(name: string): Expected {
  return JSON.parse(readFileSync(join(PEFT_FIXTURES, name, 'expected.json'), 'utf8')) as Expected;
}

/** The base model folder of a fixture: one of the fixtures' own, or the shipped tiny chat model. */
export function baseDirOf(name: string): string {
  const base = expectedOf(name).base;
  return base.startsWith('assets/') ? join(ROOT, base) : join(PEFT_FIXTURES, base);
}

const ROOT = join(import.meta.dirname, '..', '..');
const bases = new Map<string, DecoderModel>();
export function baseOf(name: string): DecoderModel {
  const base = expectedOf(name).base;
  if (!bases.has(base)) bases.set(base, loadModel(baseDirOf(name), { dtype: 'f32' }));
  return bases.get(base)!;
}

/** Logits [prompt, vocab] of the attached model, or through a per-row adapter lookup. */
export function promptLogits(
  model: DecoderModel,
  prompt: number[],
  lora: LoraLookup | null = null,
): Float32Array {
  const rowLora = lora ? prompt.map(() => lora) : undefined;
  return noGrad(() =>
    tidy(() => {
      const input = { batch: 1, seq: prompt.length, inputIds: Int32Array.from(prompt) };
      const h = model.forwardHidden(input, undefined, rowLora);
      return model.logits(h, undefined, rowLora).readSync() as Float32Array;
    }),
  );
}

/** Greedy continuation through the KV-cache decoder (the path `generate` and `serve` use). */
export async function greedy(
  model: DecoderModel,
  prompt: number[],
  n: number,
  lora: LoraLookup | null = null,
): Promise<number[]> {
  const decoder = new SequenceDecoder(model);
  const seq = decoder.start(prompt, { temperature: 0 }, lora, n);
  const out: number[] = [];
  while (out.length < n) {
    const [token] = await decoder.step([seq]);
    if (token !== null && token !== undefined) out.push(token);
  }
  decoder.release(seq);
  return out;
}

/** Greedy continuations of one prompt under several per-row adapters, decoded as one batch. */
export async function greedyBatch(
  model: DecoderModel,
  prompt: number[],
  n: number,
  loras: (LoraLookup | null)[],
): Promise<number[][]> {
  const decoder = new SequenceDecoder(model);
  const seqs = loras.map((lora) => decoder.start(prompt, { temperature: 0 }, lora, n));
  const out = seqs.map((): number[] => []);
  while (out[0]!.length < n) {
    const tokens = await decoder.step(seqs);
    tokens.forEach((t, i) => {
      if (t !== null) out[i]!.push(t);
    });
  }
  for (const seq of seqs) decoder.release(seq);
  return out;
}

/**
 * Max |difference| per merged weight between `mergedFile` (a merge of the DoRA fixture) and PEFT's
 * merge_and_unload of it, for the 14 tensors PEFT's merge changes.
 */
export function doraMergeDiffs(mergedFile: string): [string, number][] {
  const mine = readGolden(mergedFile);
  const ref = readGolden(join(PEFT_FIXTURES, 'dora', 'expected.safetensors'));
  const merged = ref.names().filter((n) => n.startsWith('merged.model.'));
  if (merged.length !== 14) throw new Error(`${merged.length} merged tensors in the DoRA fixture`);
  return merged.map((key) => {
    const name = key.slice('merged.'.length);
    return [name, maxAbsDiff(mine.f32(name).data, ref.f32(key).data)];
  });
}
