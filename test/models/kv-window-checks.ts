/**
 * Checks of the sliding-window layers' KV cache, which keeps only the window in a ring
 * (models/kv-window.ts): whatever the steps (a prompt, single tokens, chunks that wrap the ring,
 * a chunk longer than the window, left padding), the cached logits equal a full forward pass of
 * the same tokens. Run on the CPU (test/models/kv-window.test.ts) and on WebGPU.
 */
import assert from 'node:assert/strict';
import { noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import type { DecoderModel, ModelInput } from '../../src/models/decoder.ts';
import { KVCache } from '../../src/models/kv-cache.ts';
import { maxAbsDiff } from '../helpers.ts';

const TOKENS = [5, 17, 300, 41, 8, 99, 700, 7, 12, 250, 31, 64, 2, 999, 123, 456, 78];

async function logitsOf(model: DecoderModel, input: ModelInput, cache?: KVCache) {
  const logits = noGrad(() => tidy(() => model.logits(model.forwardHidden(input, cache))));
  const values = await logits.toFloat32();
  logits.dispose();
  return values;
}

/** One sequence fed in chunks of 5, 1, 3, 1, 1 and 6 positions (window 4). */
export async function checkChunks(model: DecoderModel): Promise<void> {
  const vocab = model.config.vocabSize;
  const inputIds = Int32Array.from(TOKENS);
  const full = await logitsOf(model, { batch: 1, seq: TOKENS.length, inputIds });
  const cache = new KVCache(model.config, 1, TOKENS.length);
  let start = 0;
  for (const seq of [5, 1, 3, 1, 1, 6]) {
    const ids = inputIds.subarray(start, start + seq);
    const mine = await logitsOf(model, { batch: 1, seq, inputIds: ids }, cache);
    const diff = maxAbsDiff(mine, full.subarray(start * vocab, (start + seq) * vocab));
    assert.ok(diff < 1e-5, `positions ${start}..${start + seq - 1}: ${diff}`);
    start += seq;
  }
  cache.dispose();
}

/** Two rows, the first left-padded, prefilled together and then decoded 3 steps. */
export async function checkPaddedBatch(model: DecoderModel): Promise<void> {
  const vocab = model.config.vocabSize;
  const [prompt, steps] = [
    8,
    [
      [3, 4],
      [5, 6],
      [7, 8],
    ],
  ];
  const rows = [[0, 0, ...TOKENS.slice(0, 6)], TOKENS.slice(6, 14)];
  const masks = [[0, 0, 1, 1, 1, 1, 1, 1], new Array<number>(prompt).fill(1)];
  const total = prompt + steps.length;
  // Reference: prompts and decoded tokens in one padded forward pass.
  const full = await logitsOf(model, {
    batch: 2,
    seq: total,
    inputIds: Int32Array.from([0, 1].flatMap((b) => [...rows[b]!, ...steps.map((s) => s[b]!)])),
    attentionMask: Int32Array.from([0, 1].flatMap((b) => [...masks[b]!, 1, 1, 1])),
  });
  const at = (logits: Float32Array, row: number) => logits.subarray(row * vocab, (row + 1) * vocab);
  const cache = new KVCache(model.config, 2, total);
  const prefill = await logitsOf(
    model,
    {
      batch: 2,
      seq: prompt,
      inputIds: Int32Array.from(rows.flat()),
      attentionMask: Int32Array.from(masks.flat()),
    },
    cache,
  );
  for (const b of [0, 1]) {
    for (let t = 0; t < prompt; t++) {
      if (!masks[b]![t]) continue;
      const diff = maxAbsDiff(at(prefill, b * prompt + t), at(full, b * total + t));
      assert.ok(diff < 1e-5, `prefill row ${b} position ${t}: ${diff}`);
    }
  }
  for (const [i, step] of steps.entries()) {
    const input = { batch: 2, seq: 1, inputIds: Int32Array.from(step) };
    const mine = await logitsOf(model, input, cache);
    for (const b of [0, 1]) {
      const diff = maxAbsDiff(at(mine, b), at(full, b * total + prompt + i));
      assert.ok(diff < 1e-5, `step ${i} row ${b}: ${diff}`);
    }
  }
  cache.dispose();
}
