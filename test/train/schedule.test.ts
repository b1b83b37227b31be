import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LrSchedule, resolveWarmupSteps } from '../../src/train/schedule.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { GOLDEN } from '../helpers.ts';

const log = JSON.parse(readFileSync(`${GOLDEN}/qwen2-tiny/train/train_log.json`, 'utf8')) as {
  steps: { step: number; lr: number; lr_after_scheduler_step: number }[];
};

test('golden run: cosine with 2 warmup steps reproduces every logged lr exactly', () => {
  const schedule = new LrSchedule({ name: 'cosine', lr: 5e-3, totalSteps: 10, warmupSteps: 2 });
  assert.equal(log.steps.length, 10);
  for (const s of log.steps) {
    assert.equal(schedule.lrAt(s.step - 1), s.lr, `lr of step ${s.step}`);
    assert.equal(
      schedule.lrAt(s.step),
      s.lr_after_scheduler_step,
      `lr logged after step ${s.step}`,
    );
  }
});

test('linear: warmup from 0, then linear decay to 0 at totalSteps', () => {
  const s = new LrSchedule({ name: 'linear', lr: 1, totalSteps: 10, warmupSteps: 4 });
  assert.deepEqual(
    [0, 1, 2, 3, 4, 7, 10, 12].map((i) => s.lrAt(i)),
    [0, 0.25, 0.5, 0.75, 1, 0.5, 0, 0],
  );
});

test('constant ignores warmup; constant_with_warmup ramps then holds', () => {
  const c = new LrSchedule({ name: 'constant', lr: 2e-4, totalSteps: 10, warmupSteps: 3 });
  assert.deepEqual(
    [0, 5, 50].map((i) => c.lrAt(i)),
    [2e-4, 2e-4, 2e-4],
  );
  const w = new LrSchedule({ name: 'constant_with_warmup', lr: 3, totalSteps: 10, warmupSteps: 3 });
  assert.deepEqual(
    [0, 1, 2, 3, 9, 100].map((i) => w.lrAt(i)),
    [0, 1, 2, 3, 3, 3],
  );
});

test('cosine without warmup starts at the peak, reaches 0 at totalSteps', () => {
  const s = new LrSchedule({ name: 'cosine', lr: 1, totalSteps: 100 });
  assert.equal(s.lrAt(0), 1);
  assert.ok(Math.abs(s.lrAt(50) - 0.5) < 1e-15);
  assert.equal(s.lrAt(100), 0);
  // Like HF's lambda, steps past the end are not clamped: the cosine rises again (Trainer never asks).
  assert.ok(Math.abs(s.lrAt(150) - 0.5) < 1e-15);
});

test('warmup ratio rounds up like HF; explicit warmup steps win', () => {
  assert.equal(resolveWarmupSteps(10, 0, 0.1), 1);
  assert.equal(resolveWarmupSteps(1000, 0, 0.03), 30);
  assert.equal(resolveWarmupSteps(7, 0, 0.1), 1); // ceil(0.7)
  assert.equal(resolveWarmupSteps(100, 5, 0.5), 5);
  assert.equal(
    new LrSchedule({ name: 'linear', lr: 1, totalSteps: 25, warmupRatio: 0.1 }).warmupSteps,
    3,
  );
});

test('invalid options are user errors', () => {
  assert.throws(
    () => new LrSchedule({ name: 'cosine_restarts' as never, lr: 1, totalSteps: 10 }),
    LoraforgeError,
  );
  assert.throws(() => new LrSchedule({ name: 'linear', lr: -1, totalSteps: 10 }), LoraforgeError);
  assert.throws(() => new LrSchedule({ name: 'linear', lr: 1, totalSteps: 2.5 }), LoraforgeError);
  assert.throws(() => resolveWarmupSteps(10, 0, 1.5), LoraforgeError);
  assert.throws(() => resolveWarmupSteps(10, -1), LoraforgeError);
});
