/**
 * The training utilities end to end on the golden 10-step LoRA run: real gradients from the
 * engine, then this folder's clipping, cosine schedule and AdamW, compared step by step with
 * the PyTorch / HF Trainer parameters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { clipGradNorm } from '../../src/train/clip.ts';
import { AdamW, type NamedParameter } from '../../src/train/optimizer.ts';
import { LrSchedule } from '../../src/train/schedule.ts';
import { TINY, readGolden, relativeError } from '../helpers.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

forEachCpuBackend(() => {
  const TRAIN = join(TINY, 'train');

  test('golden run: 10 steps of accumulation, clipping, cosine lr and AdamW match PyTorch to 1e-4', async () => {
    const log = JSON.parse(readFileSync(join(TRAIN, 'train_log.json'), 'utf8')) as {
      steps: { loss: number; grad_norm: number }[];
    };
    const model = loadModel(TINY);
    const adapter = loadAdapter(join(TRAIN, 'adapter_init'), model);
    adapter.attach(model);
    adapter.setTrainable(true);
    const batches = readGolden(join(TRAIN, 'train_batches.safetensors'));
    const [ids, mask, labels] = ['input_ids', 'attention_mask', 'labels'].map(
      (k) => batches.i32(k).data,
    );
    const expected = readGolden(join(TRAIN, 'params_per_step.safetensors'));
    const schedule = new LrSchedule({ name: 'cosine', lr: 5e-3, totalSteps: 10, warmupSteps: 2 });
    const rows = 2;
    const seq = 24;

    let optimizer: AdamW | undefined;
    let params: NamedParameter[] = [];
    for (let step = 1; step <= 10; step++) {
      let loss = 0;
      for (const k of [2 * (step - 1), 2 * (step - 1) + 1]) {
        const slice = (a: Int32Array) => a.subarray(k * rows * seq, (k + 1) * rows * seq);
        loss += tidy(() => {
          const input = { batch: rows, seq, inputIds: slice(ids!), attentionMask: slice(mask!) };
          const { loss: l } = model.loss(input, slice(labels!));
          const value = (l.readSync() as Float32Array)[0]!;
          backward(l, 0.5); // loss_k / 2: the mean over the two accumulated micro-batches
          return value / 2;
        });
      }
      if (!optimizer) {
        // Gradient tensors exist after the first backward; their host views stay live.
        params = adapter
          .namedParameters()
          .map(([name, t]) => ({ name, data: t.hostF32(), grad: t.grad!.hostF32() }));
        optimizer = new AdamW(params, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
      }
      const norm = clipGradNorm(
        params.map((p) => p.grad),
        1.0,
      );
      optimizer.step(schedule.lrAt(step - 1));
      optimizer.zeroGrad();

      const want = log.steps[step - 1]!;
      assert.ok(
        Math.abs(loss - want.loss) < 1e-4 * want.loss,
        `step ${step} loss ${loss} vs ${want.loss}`,
      );
      assert.ok(
        Math.abs(norm - want.grad_norm) < 1e-4 * want.grad_norm,
        `step ${step} grad norm ${norm} vs ${want.grad_norm}`,
      );
      for (const p of params) {
        const all = expected.f32(p.name).data;
        const ref = all.subarray((step - 1) * p.data.length, step * p.data.length);
        const err = relativeError(p.data, ref);
        assert.ok(err < 1e-4, `step ${step} ${p.name}: relative error ${err}`);
      }
    }
    adapter.dispose();
    model.dispose();
  });
});
