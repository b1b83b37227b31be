/**
 * The node-free Trainer's callbacks (HF TrainerCallback / mlx-lm TrainingCallback): when each one
 * fires, what a save point carries, how `shouldStop` ends a run, and that the loop itself touches
 * no file (trainInFolder is what writes).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { Trainer, type TrainerCheckpoint } from '../../src/train/trainer.ts';
import type { MetricsRecord } from '../../src/train/metrics.ts';
import { TINY, useCpuBackend } from '../helpers.ts';
import {
  FixedBatches,
  TRAIN,
  goldenArgs,
  goldenBatches,
  goldenSteps,
  relDiff,
} from './golden-data.ts';

const NEVER_WRITTEN = join(tmpdir(), `lf-never-written-${process.pid}`);
let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(TINY);
});

/** The golden run's trainer (with `args` changed), evaluating on two of its batches. */
function goldenTrainer(outputDir: string, args: Parameters<typeof goldenArgs>[1]) {
  const adapter = loadAdapter(join(TRAIN, 'adapter_init'), model);
  adapter.attach(model);
  const batches = goldenBatches();
  const trainer = new Trainer({
    model,
    adapter,
    train: new FixedBatches(batches),
    evalBatches: () => batches.slice(0, 2),
    args: goldenArgs(outputDir, args),
  });
  return { trainer, adapter };
}

test('callbacks see every step, log, evaluation and save point; the loop writes no file', async () => {
  const { trainer, adapter } = goldenTrainer(NEVER_WRITTEN, { evalSteps: 5, saveSteps: 4 });
  const steps: number[] = [];
  const logs: MetricsRecord[] = [];
  const evals: number[] = [];
  const saves: Pick<TrainerCheckpoint, 'globalStep' | 'kind' | 'stopped'>[] = [];
  let finalWeights = 0;
  trainer.addCallback({
    onStep: (info) => steps.push(info.globalStep),
    onLog: (r) => logs.push(r),
    onEvaluate: (r) => evals.push(r.step),
    onSave: async ({ globalStep, kind, stopped, trainerState, weights, optimizer }) => {
      saves.push({ globalStep, kind, stopped });
      assert.equal(trainerState.global_step, globalStep);
      assert.equal((await optimizer()).meta.step, globalStep);
      if (kind === 'final') finalWeights = (await weights()).length;
    },
  });
  const result = await trainer.train();
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(evals, [5, 10]);
  // The train log of each step (logging_steps 1), then the eval record after steps 5 and 10.
  assert.equal(logs.filter((r) => r.loss !== undefined).length, 10);
  assert.deepEqual(
    logs.filter((r) => r.eval_loss !== undefined).map((r) => r.step),
    [5, 10],
  );
  goldenSteps().forEach((g, i) =>
    assert.ok(relDiff(logs.filter((r) => r.loss)[i]!.loss!, g.loss) < 1e-4),
  );
  assert.deepEqual(saves, [
    { globalStep: 4, kind: 'checkpoint', stopped: false },
    { globalStep: 8, kind: 'checkpoint', stopped: false },
    { globalStep: 10, kind: 'final', stopped: false },
  ]);
  assert.equal(finalWeights, adapter.namedParameters().length);
  assert.equal(result.globalStep, 10);
  assert.equal(result.stopped, false);
  assert.equal(result.evalLoss, logs.at(-1)!.eval_loss);
  assert.ok(!existsSync(NEVER_WRITTEN), 'the node-free loop must not write');
  // A Trainer trains once: its gradients are freed and the adapter is frozen again.
  assert.ok(adapter.namedParameters().every(([, t]) => !t.requiresGrad && t.grad === null));
  adapter.dispose();
});

test('shouldStop ends the run after that step with a checkpoint to resume from', async () => {
  const { trainer, adapter } = goldenTrainer(NEVER_WRITTEN, {});
  const saves: [number, string, boolean][] = [];
  trainer.addCallback({
    shouldStop: ({ globalStep }) => globalStep === 3,
    onSave: ({ globalStep, kind, stopped }) => void saves.push([globalStep, kind, stopped]),
  });
  const result = await trainer.train();
  assert.deepEqual(saves, [[3, 'checkpoint', true]]);
  assert.equal(result.globalStep, 3);
  assert.equal(result.stopped, true);
  adapter.dispose();
});
