/**
 * One test suite over the kernel registry (src/engine/kernels/registry.ts): every case runs a
 * registry kernel on a backend and compares every buffer it writes (and its result) with the
 * spec's JS reference on host copies. Shared by the CPU (test/engine/registry-kernels.test.ts)
 * and WebGPU (test/webgpu/registry-kernels.test.ts) runs, each registering the cases on the
 * kernel sets it wants covered (e.g. a WebGPU runner whose bindings are tiny, to cover chunking).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adamwScalars } from '../../src/engine/kernels/adamw.ts';
import {
  KERNELS,
  type KernelName,
  type RegistryKernels,
} from '../../src/engine/kernels/registry.ts';
import type { BufferSpec } from '../../src/engine/kernels/spec.ts';
import { Tensor, tidyAsync } from '../../src/engine/tensor.ts';
import { Rng } from '../../src/util/rng.ts';

type HostData = Float32Array | Int32Array;

interface KernelCase {
  kernel: KernelName;
  label: string;
  buffers: Record<string, HostData | null>;
  params: Record<string, unknown>;
  /** Calls in a row (state carried in the buffers, e.g. optimizer steps). */
  repeat?: number;
  /** Largest |got − expected| / max(1, |expected|) allowed; 0 = bit-exact. */
  tolerance: number;
}

export interface Tolerances {
  /** Element-wise float kernels whose backend may fuse or reorder (WebGPU): 0 on the CPU. */
  fused: number;
  /** Reductions whose summation order differs from the reference. */
  reduction: number;
}

const rng = new Rng(2024);
const normals = (n: number, scale = 1) =>
  Float32Array.from({ length: n }, () => rng.normal(0, scale));

function cases(tol: Tolerances): KernelCase[] {
  const list: KernelCase[] = [];
  // 1001 and 100_003 elements: a SIMD tail, and enough work for the CPU's thread split.
  for (const n of [11, 1001, 100_003]) {
    const betas: [number, number] = [0.9, 0.999];
    list.push({
      kernel: 'adamwStep',
      label: `3 AdamW steps of ${n} values`,
      buffers: {
        p: normals(n),
        g: normals(n, 0.01),
        m: normals(n, 0.001),
        v: Float32Array.from(normals(n, 1e-4), Math.abs),
      },
      // The step's scalars as the Trainer passes them (float64, rounded once by the kernel).
      params: { n, ...adamwScalars(1e-3, betas, 1e-8, 0.01, 1 - 0.9 ** 3, 1 - 0.999 ** 3) },
      repeat: 3,
      tolerance: tol.fused,
    });
    list.push(
      {
        kernel: 'add',
        label: `add ${n}`,
        buffers: { a: normals(n), b: normals(n), out: new Float32Array(n) },
        params: { n },
        tolerance: 0,
      },
      {
        kernel: 'axpby',
        label: `axpby ${n}`,
        buffers: { x: normals(n), y: normals(n) },
        params: { n, alpha: 2, beta: -1 },
        tolerance: tol.fused,
      },
      {
        kernel: 'axpby',
        label: `axpby ${n}, beta 0 ignores NaN in y`,
        buffers: { x: normals(n), y: new Float32Array(n).fill(NaN) },
        params: { n, alpha: 3, beta: 0 },
        tolerance: 0,
      },
      {
        kernel: 'dropout',
        label: `dropout ${n}`,
        buffers: { x: normals(n), out: new Float32Array(n) },
        params: { n, p: 0.3, seed: 0xdeadbeef },
        tolerance: 0,
      },
      {
        kernel: 'scaleByScalar',
        label: `scaleByScalar ${n}`,
        buffers: { x: normals(n), factor: Float32Array.of(0.75) },
        params: { n, divisor: 3 },
        tolerance: tol.fused,
      },
      {
        kernel: 'sumSquares',
        label: `sumSquares ${n}`,
        buffers: { x: normals(n) },
        params: { n },
        tolerance: tol.reduction,
      },
    );
  }
  list.push(
    {
      kernel: 'fill',
      label: 'fill f32',
      buffers: { x: normals(37) },
      params: { n: 37, value: -2.5 },
      tolerance: 0,
    },
    {
      kernel: 'fill',
      label: 'fill i32',
      buffers: { x: new Int32Array(5).fill(9) },
      params: { n: 5, value: -7 },
      tolerance: 0,
    },
    {
      kernel: 'sumSquares',
      label: 'sumSquares of nothing is 0',
      buffers: { x: Float32Array.of(5) },
      params: { n: 0 },
      tolerance: 0,
    },
  );
  return list;
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i]!, want[i]!];
    if (Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w))) continue;
    const error = Math.abs(g - w) / Math.max(1, Math.abs(w));
    assert.ok(error <= tol, `${what}[${i}]: ${g} vs ${w} (error ${error}, allowed ${tol})`);
  }
}

async function runCase(kernels: RegistryKernels, c: KernelCase): Promise<void> {
  const spec = KERNELS[c.kernel];
  const specBuffers = spec.buffers as Record<string, BufferSpec>;
  const host = Object.fromEntries(
    Object.entries(c.buffers).map(([name, data]) => [name, data && data.slice()]),
  );
  const reference = spec.reference as (b: unknown, p: unknown) => number | void;
  const run = kernels[c.kernel] as (b: unknown, p: unknown) => Promise<number> | void;
  await tidyAsync(async () => {
    const tensors = Object.fromEntries(
      Object.entries(c.buffers).map(([name, data]) => [
        name,
        data && Tensor.from(data, [data.length], data instanceof Int32Array ? 'i32' : 'f32'),
      ]),
    );
    const operands = Object.fromEntries(
      Object.entries(tensors).map(([name, t]) => [name, t && t.operand()]),
    );
    let expected: number | void = undefined;
    let got: number | void = undefined;
    for (let i = 0; i < (c.repeat ?? 1); i++) {
      expected = reference(host, c.params);
      got = await run(operands, c.params);
    }
    if (expected !== undefined) {
      const error = Math.abs((got as number) - expected) / Math.max(1, Math.abs(expected));
      assert.ok(error <= c.tolerance, `${c.label}: result ${got} vs ${expected}`);
    }
    for (const [name, buffer] of Object.entries(specBuffers)) {
      const t = tensors[name];
      if (buffer.access === 'read' || !t) continue;
      const bytes = await t.bytesOut();
      const values =
        t.dtype === 'i32'
          ? new Int32Array(bytes.buffer, bytes.byteOffset, t.size)
          : new Float32Array(bytes.buffer, bytes.byteOffset, t.size);
      assertClose(values, host[name]!, c.tolerance, `${c.label}: ${name}`);
    }
  });
}

/** Registers one test per registry kernel, running all of its cases on `kernels()`. */
export function registerKernelCases(
  label: string,
  kernels: () => RegistryKernels,
  tolerances: Tolerances,
  options: { skip?: string | false } = {},
): void {
  const all = cases(tolerances);
  for (const name of Object.keys(KERNELS) as KernelName[]) {
    test(`${label}: ${name} matches its reference`, { skip: options.skip }, async () => {
      const mine = all.filter((c) => c.kernel === name);
      assert.ok(mine.length > 0, `no test case for registry kernel ${name}`);
      for (const c of mine) await runCase(kernels(), c);
    });
  }
}
