/**
 * The LoRA layer ops against their definitions: the mixed batch gives each row what its own
 * adapter gives it alone, and x·(W + loraDelta)ᵀ is the LoRA forward (what merging relies on).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { linear } from '../../src/engine/ops/linear.ts';
import {
  adaptedLinear,
  loraDelta,
  mixedBatchLinear,
  type RowAdapter,
} from '../../src/engine/ops/lora-layer.ts';
import type { LoraWeights } from '../../src/engine/ops/lora-linear.ts';
import { noGrad } from '../../src/engine/tape.ts';
import { Tensor, tidy } from '../../src/engine/tensor.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff, useCpuBackend } from '../helpers.ts';

before(async () => {
  await useCpuBackend();
});

const [ROWS, IN, OUT, R] = [5, 12, 7, 3];
const rng = new Rng(3);
const random = (shape: number[], std = 0.5) =>
  Tensor.from(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal(0, std)),
    shape,
  );
const read = (t: Tensor) => t.readSync() as Float32Array;

test('mixedBatchLinear gives every row what its own adapter gives it alone', () =>
  noGrad(() =>
    tidy(() => {
      const x = random([ROWS, IN]);
      const w = random([OUT, IN]);
      const bias = random([OUT]);
      const lora = (): LoraWeights => ({ a: random([R, IN]), b: random([OUT, R]), scale: 2 });
      const plain = lora();
      const dora: LoraWeights = { ...lora(), magnitude: random([OUT]) };
      const trainedBias = { lora: lora(), bias: random([OUT]) };
      // Two rows share the plain adapter, one row has none.
      const perRow: (RowAdapter | null)[] = [
        { lora: plain },
        null,
        { lora: dora },
        trainedBias,
        { lora: plain },
      ];
      const mixed = read(mixedBatchLinear(x, w, bias, perRow));
      perRow.forEach((adapter, row) => {
        const xr = x.view([1, IN], row * IN);
        const alone = adapter?.lora
          ? adaptedLinear(xr, w, adapter.bias ?? bias, adapter.lora)
          : linear(xr, w, bias);
        const diff = maxAbsDiff(mixed.subarray(row * OUT, (row + 1) * OUT), read(alone));
        assert.ok(diff < 1e-5, `row ${row}: ${diff}`);
      });
      // And the low-rank term is really there: a wrong adapter would not pass.
      const base = read(linear(x.view([1, IN], 0), w, bias));
      assert.ok(maxAbsDiff(mixed.subarray(0, OUT), base) > 1e-2);
    }),
  ));

test('x·(W + loraDelta)ᵀ + b equals the LoRA forward', () =>
  noGrad(() =>
    tidy(() => {
      const x = random([ROWS, IN]);
      const w = random([OUT, IN]);
      const bias = random([OUT]);
      const lora = { a: random([R, IN]), b: random([OUT, R]), scale: 0.75 };
      const merged = Tensor.empty([OUT, IN]);
      const delta = loraDelta(lora);
      merged.backend.kernels.add(
        { a: w.operand(), b: delta.operand(), out: merged.operand() },
        { n: merged.size },
      );
      const diff = maxAbsDiff(read(linear(x, merged, bias)), read(adaptedLinear(x, w, bias, lora)));
      assert.ok(diff < 1e-5, `${diff}`);
      assert.ok(maxAbsDiff(read(delta), new Float32Array(OUT * IN)) > 1e-2, 'the delta is not 0');
    }),
  ));
