// The Trainer on WebGPU records a whole micro-step (uploads, forward, backward, the loss copy)
// into one command buffer and waits on the device once per optimizer step: the loss reads of its
// micro-steps and the gradient-norm read are all in flight together.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { TINY } from '../helpers.ts';
import { FixedBatches, TRAIN, goldenArgs, goldenBatches } from '../train/golden-data.ts';
import { join } from 'node:path';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const gpu = await useWebGpuBackend();

test(
  'a micro-step is one command buffer and the host waits once per optimizer step',
  {
    skip: gpu.skip,
  },
  async () => {
    const runner = gpu.backend().gpu.runner;
    const model = loadModel(TINY);
    const adapter = loadAdapter(join(TRAIN, 'adapter_init'), model);
    adapter.attach(model);
    const accumulation = 3;
    // Read-backs in flight at once: 1 when the host waits for each loss before going on.
    let inFlight = 0;
    let mostInFlight = 0;
    const read = runner.read.bind(runner);
    runner.read = async (ref, bytes) => {
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      try {
        return await read(ref, bytes);
      } finally {
        inFlight--;
      }
    };
    const submitsAtStep: number[] = [];
    const trainer = new Trainer({
      model,
      adapter,
      train: new FixedBatches(goldenBatches()),
      args: goldenArgs('unused', { maxSteps: 4, gradientAccumulationSteps: accumulation }),
      callbacks: [{ onStep: () => void submitsAtStep.push(runner.submits) }],
    });
    await trainer.train();
    adapter.dispose();
    model.dispose();
    // From the second step on (the first also submits the start-up work): the micro-steps, each
    // flushed by its loss read, and the gradient-norm read; the optimizer's kernels ride along
    // with the next step's first micro-step.
    const perStep = submitsAtStep.slice(1).map((count, i) => count - submitsAtStep[i]!);
    assert.deepEqual(perStep, [accumulation + 1, accumulation + 1, accumulation + 1]);
    assert.equal(mostInFlight, accumulation + 1);
    runner.read = read;
  },
);
