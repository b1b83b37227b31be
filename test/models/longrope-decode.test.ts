/**
 * LongRoPE picks its table from the largest position of a forward pass (as transformers does).
 * A continuous-batching decode step holds independent sequences: one past
 * original_max_position_embeddings must not switch the table of one still below it, so each
 * row's logits equal those of its sequence decoded alone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { KVCache } from '../../src/models/kv-cache.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { TINY_CHAT_SHAPE, maxAbsDiff, useCpuBackend } from '../helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'lf-longrope-'));
let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  writeRandomModel(
    dir,
    {
      ...TINY_CHAT_SHAPE,
      architectures: ['Phi3ForCausalLM'],
      partial_rotary_factor: 0.75,
      original_max_position_embeddings: 8,
      rope_scaling: {
        type: 'longrope',
        short_factor: [1, 1.2, 1.5, 2, 3, 4],
        long_factor: [2, 3, 5, 8, 13, 21],
      },
    },
    { seed: 3, std: 0.5 },
  );
  model = loadModel(dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A cache holding `prompt`, and the logits of decoding `next` after it. */
function prefill(prompt: number[]): KVCache {
  const cache = new KVCache(model.config, 1, 32);
  const inputIds = Int32Array.from(prompt);
  noGrad(() => tidy(() => model.forwardHidden({ batch: 1, seq: prompt.length, inputIds }, cache)));
  return cache;
}

function decode(ids: number[], caches: KVCache[]): Float32Array {
  return noGrad(() =>
    tidy(() => model.logits(model.forwardDecode(ids, caches)).readSync() as Float32Array),
  );
}

test('a decode step mixing rows below and past the LongRoPE switch equals each row alone', () => {
  const long = [5, 17, 300, 41, 8, 99, 700, 7, 12, 250]; // next position 10 > 8: long factors
  const short = [31, 64, 2]; // next position 3: short factors
  const vocab = model.config.vocabSize;
  const together = decode([11, 13], [prefill(long), prefill(short)]);
  const alone = [decode([11], [prefill(long)]), decode([13], [prefill(short)])];
  alone.forEach((logits, row) => {
    const diff = maxAbsDiff(together.subarray(row * vocab, (row + 1) * vocab), logits);
    assert.ok(diff < 1e-5, `row ${row}: ${diff}`);
  });
});
