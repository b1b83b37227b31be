import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { SafetensorsBuffer } from '../../src/io/safetensors-buffer.ts';
import { parseDecoderConfig } from '../../src/models/config.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { modelFromTensors } from '../../src/models/from-tensors.ts';
import { loadModel } from '../../src/models/load.ts';
import { TINY, maxAbsDiff, readGolden } from '../helpers.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

/** Largest difference between the model's logits and transformers' on the golden padded batch. */
function goldenLogitsDiff(model: DecoderModel): number {
  const g = readGolden(join(TINY, 'forward.safetensors'));
  const ids = g.i32('input_ids');
  const mask = g.i32('attention_mask');
  const [batch, seq] = ids.shape as [number, number];
  const logits = noGrad(() =>
    tidy(() => {
      const h = model.forwardHidden({ batch, seq, inputIds: ids.data, attentionMask: mask.data });
      return model.logits(h).readSync() as Float32Array;
    }),
  );
  return maxAbsDiff(logits, g.f32('logits').data);
}

forEachCpuBackend(() => {
  test('qwen2-tiny logits match transformers on a padded batch', () => {
    const diff = goldenLogitsDiff(loadModel(TINY));
    assert.ok(diff < 1e-4, `max abs diff ${diff}`);
  });

  test('qwen2-tiny loaded from bytes in memory (as a browser does) gives the same logits', () => {
    const config = parseDecoderConfig(
      JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')),
      'config.json',
    );
    const weights = new SafetensorsBuffer(
      readFileSync(join(TINY, 'model.safetensors')),
      'model.safetensors',
    );
    const diff = goldenLogitsDiff(modelFromTensors(config, weights, 'memory', {}));
    assert.ok(diff < 1e-4, `max abs diff ${diff}`);
  });
});
