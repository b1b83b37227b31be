import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  clipCoefficient,
  clipGradNorm,
  globalGradNorm,
  hasNonFinite,
} from '../../src/train/clip.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { GOLDEN } from '../helpers.ts';

test('global norm spans all arrays', () => {
  assert.equal(globalGradNorm([Float32Array.of(3), Float32Array.of(0, 4)]), 5);
  assert.equal(globalGradNorm([]), 0);
});

test('gradients below max_norm are left bit-identical', () => {
  const g = Float32Array.of(0.3, -0.4);
  const before = g.slice();
  assert.ok(Math.abs(clipGradNorm([g], 1) - 0.5) < 1e-7);
  assert.deepEqual(g, before);
});

test('gradients above max_norm are scaled by max_norm / (norm + 1e-6); the pre-clip norm is returned', () => {
  const a = Float32Array.of(3, 0);
  const b = Float32Array.of(0, 4);
  const norm = clipGradNorm([a, b], 1);
  assert.equal(norm, 5);
  const coef = Math.fround(1 / Math.fround(5 + Math.fround(1e-6)));
  assert.deepEqual([...a, ...b], [Math.fround(3 * coef), 0, 0, Math.fround(4 * coef)]);
  assert.ok(Math.abs(globalGradNorm([a, b]) - 1) < 1e-6);
});

test('golden run: the clip coefficient of step 7 (the clipped one) and no clipping elsewhere', () => {
  const { steps } = JSON.parse(
    readFileSync(`${GOLDEN}/qwen2-tiny/train/train_log.json`, 'utf8'),
  ) as {
    steps: { step: number; grad_norm: number; clip_coef: number }[];
  };
  for (const s of steps) {
    const coef = clipCoefficient(s.grad_norm, 1.0);
    assert.ok(
      Math.abs(coef - s.clip_coef) <= 1e-7 * s.clip_coef,
      `step ${s.step}: ${coef} vs ${s.clip_coef}`,
    );
  }
  assert.ok(clipCoefficient(steps[6]!.grad_norm, 1.0) < 1);
});

test('non-finite gradients: detected, left untouched, or thrown on request', () => {
  assert.equal(hasNonFinite(Float32Array.of(1, 2)), false);
  assert.equal(hasNonFinite(Float32Array.of(1, NaN)), true);
  assert.equal(hasNonFinite(Float32Array.of(-Infinity)), true);
  const g = Float32Array.of(1e3, NaN);
  assert.ok(Number.isNaN(clipGradNorm([g], 1)));
  assert.equal(g[0], 1e3);
  assert.equal(clipGradNorm([Float32Array.of(Infinity)], 1), Infinity);
  assert.throws(() => clipGradNorm([g], 1, { errorIfNonfinite: true }), LoraforgeError);
  assert.throws(() => clipGradNorm([g], 0), LoraforgeError);
});
