import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { TINY, maxAbsDiff, readGolden, useCpuBackend } from '../helpers.ts';
import { join } from 'node:path';

let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(TINY);
});

test('qwen2-tiny logits match transformers on a padded batch', () => {
  const g = readGolden(join(TINY, 'forward.safetensors'));
  const ids = g.i32('input_ids');
  const mask = g.i32('attention_mask');
  const expected = g.f32('logits');
  const [batch, seq] = ids.shape as [number, number];
  const logits = noGrad(() =>
    tidy(() => {
      const h = model.forwardHidden({ batch, seq, inputIds: ids.data, attentionMask: mask.data });
      return model.logits(h).readSync() as Float32Array;
    }),
  );
  const diff = maxAbsDiff(logits, expected.data);
  assert.ok(diff < 1e-4, `max abs diff ${diff}`);
});
