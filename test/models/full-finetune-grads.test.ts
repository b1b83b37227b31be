/**
 * Full fine-tuning differentiates every weight (tied embedding/head, norms, biases, projections).
 * The ops have float64 gradient checks of their own; this checks they compose, against central
 * differences of the f32 model loss.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { backward, noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { TINY, readGolden } from '../helpers.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

forEachCpuBackend(() => {
  let model: DecoderModel;
  before(async () => {
    model = loadModel(TINY);
  });

  test('every weight gradient of the full model matches finite differences', () => {
    const batch = readGolden(join(TINY, 'lora', 'batch.safetensors'));
    const ids = batch.i32('input_ids');
    const [b, t] = ids.shape as [number, number];
    const input = {
      batch: b,
      seq: t,
      inputIds: ids.data,
      attentionMask: batch.i32('attention_mask').data,
    };
    const labels = batch.i32('labels').data;
    const weights = [...model.namedWeights()];
    for (const [, w] of weights) w.requiresGrad = true;
    tidy(() => backward(model.loss(input, labels).loss));
    const lossValue = () =>
      noGrad(() => tidy(() => (model.loss(input, labels).loss.readSync() as Float32Array)[0]!));
    for (const [name, w] of weights) {
      const grad = w.grad!.readSync() as Float32Array;
      const values = w.hostF32();
      // The largest-gradient entry of each tensor: big enough to rise above f32 rounding.
      let i = 0;
      for (let j = 1; j < grad.length; j++) if (Math.abs(grad[j]!) > Math.abs(grad[i]!)) i = j;
      const h = 1e-2;
      const keep = values[i]!;
      values[i] = keep + h;
      const up = lossValue();
      values[i] = keep - h;
      const down = lossValue();
      values[i] = keep;
      const numeric = (up - down) / (2 * h);
      assert.ok(
        Math.abs(numeric - grad[i]!) <= 0.03 * Math.abs(numeric) + 1e-4,
        `${name}[${i}]: analytic ${grad[i]} vs numeric ${numeric}`,
      );
    }
    for (const [, w] of weights) {
      w.requiresGrad = false;
      w.grad?.dispose();
      w.grad = null;
    }
  });
});
