/**
 * What the GEMM benchmarks share (gemm-cpu.ts for wasm, gemm-native.ts for the native variants):
 * the 0.5B model's shapes and operand forms, random operands, the timing loop, and one wasm
 * measurement.
 */
import { performance } from 'node:perf_hooks';
import type { GemmArgs, MatrixDtype, WasmRuntime } from '../src/engine/cpu/runtime.ts';

export interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
}

/** How the operands are laid out: transposes and B's dtype (A is f32). */
export interface GemmForm {
  name: string;
  transA: boolean;
  transB: boolean;
  bDtype: MatrixDtype;
}

export const SHAPES: Shape[] = [
  { name: 'attn proj', m: 512, n: 896, k: 896 },
  { name: 'mlp up', m: 512, n: 4864, k: 896 },
  { name: 'mlp down', m: 512, n: 896, k: 4864 },
  { name: 'lm head', m: 512, n: 151936, k: 896 },
];
export const FORMS: GemmForm[] = [
  { name: 'plain', transA: false, transB: false, bDtype: 'f32' },
  { name: 'transA', transA: true, transB: false, bDtype: 'f32' },
  { name: 'transB', transA: false, transB: true, bDtype: 'f32' },
  { name: 'bf16 transB', transA: false, transB: true, bDtype: 'bf16' },
];
export const THREADS = [1, 2];
/** Each measurement repeats until this much time has passed (at least one run after a warm-up). */
const MIN_SECONDS = 0.4;

export function gflops(shape: { m: number; n: number; k: number }, seconds: number): number {
  return (2 * shape.m * shape.n * shape.k) / seconds / 1e9;
}

export interface Timing {
  /** Wall-clock seconds per run. */
  seconds: number;
  /** Process CPU seconds (all threads) per run. */
  cpuSeconds: number;
}

/** Runs `fn` once to warm up (skipped when `warmUp` is false), then until MIN_SECONDS. */
export function timeIt(fn: () => void, warmUp: boolean): Timing {
  if (warmUp) fn();
  let runs = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  do {
    fn();
    runs++;
  } while (performance.now() - start < MIN_SECONDS * 1000);
  const seconds = (performance.now() - start) / 1000 / runs;
  const cpu = process.cpuUsage(cpuStart);
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 / runs };
}

/** Whether a shape is small enough to afford a warm-up run (the LM head takes seconds). */
export function warmUpWorthIt(shape: Shape): boolean {
  return shape.m * shape.n * shape.k < 1e10;
}

export function fillRandom(view: Float32Array): void {
  for (let i = 0; i < view.length; i++) view[i] = Math.random() - 0.5;
}

/** bf16 values in [-0.5, 0.5): the top half of an f32. */
export function fillRandomBf16(view: Uint16Array): void {
  const f32 = new Float32Array(1);
  const bits = new Uint32Array(f32.buffer);
  for (let i = 0; i < view.length; i++) {
    f32[0] = Math.random() - 0.5;
    view[i] = bits[0]! >>> 16;
  }
}

/** Leading dimensions of a form's operands, packed (no padding). */
export function leadingDimensions(shape: Shape, form: GemmForm): { lda: number; ldb: number } {
  return {
    lda: form.transA ? shape.m : shape.k,
    ldb: form.transB ? shape.k : shape.n,
  };
}

/** Times the wasm GEMM of `rt` on random operands of `shape`, once per form. */
export function timeWasmForms(rt: WasmRuntime, shape: Shape, forms: GemmForm[]): Timing[] {
  const { m, n, k } = shape;
  const a = rt.malloc(m * k * 4);
  const bF32 = rt.malloc(k * n * 4);
  const bBf16 = rt.malloc(k * n * 2);
  const c = rt.malloc(m * n * 4);
  fillRandom(rt.f32(a, m * k));
  fillRandom(rt.f32(bF32, k * n));
  fillRandomBf16(rt.u16(bBf16, k * n));
  const timings = forms.map((form) => {
    const args: GemmArgs = {
      m,
      n,
      k,
      a,
      transA: form.transA,
      aDtype: 'f32',
      b: form.bDtype === 'f32' ? bF32 : bBf16,
      transB: form.transB,
      bDtype: form.bDtype,
      c,
      ldc: n,
      ...leadingDimensions(shape, form),
    };
    return timeIt(() => rt.gemm(args), warmUpWorthIt(shape));
  });
  for (const ptr of [a, bF32, bBf16, c]) rt.free(ptr);
  return timings;
}
