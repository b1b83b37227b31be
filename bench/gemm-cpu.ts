/**
 * GEMM throughput of the wasm runtime on the model's shapes (Qwen2.5-0.5B-like projections, MLP
 * and LM head at 512 tokens), with 1 and 2 threads, next to a naive JavaScript triple loop run in
 * the same process. `--json` prints every figure as one JSON object on the last line.
 */
import '../src/engine/cpu/node-host.ts';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { WasmRuntime, type GemmArgs, type MatrixDtype } from '../src/engine/cpu/runtime.ts';
import { fmaCeilingGflops } from './flops.ts';

interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
}

interface Variant {
  name: string;
  transA: boolean;
  transB: boolean;
  bDtype: MatrixDtype;
}

const SHAPES: Shape[] = [
  { name: 'attn proj', m: 512, n: 896, k: 896 },
  { name: 'mlp up', m: 512, n: 4864, k: 896 },
  { name: 'mlp down', m: 512, n: 896, k: 4864 },
  { name: 'lm head', m: 512, n: 151936, k: 896 },
];
const VARIANTS: Variant[] = [
  { name: 'plain', transA: false, transB: false, bDtype: 'f32' },
  { name: 'transA', transA: true, transB: false, bDtype: 'f32' },
  { name: 'transB', transA: false, transB: true, bDtype: 'f32' },
  { name: 'bf16 transB', transA: false, transB: true, bDtype: 'bf16' },
];
const THREADS = [1, 2];
/** Each measurement repeats until this much time has passed (at least one run after a warm-up). */
const MIN_SECONDS = 0.4;
/** The naive loop runs on NAIVE_ROWS x min(n, NAIVE_COLS) x k of each shape; its rate is what we compare. */
const NAIVE_ROWS = 8;
const NAIVE_COLS = 256;

const json = process.argv.includes('--json');

function gflops(shape: { m: number; n: number; k: number }, seconds: number): number {
  return (2 * shape.m * shape.n * shape.k) / seconds / 1e9;
}

interface Timing {
  /** Wall-clock seconds per run. */
  seconds: number;
  /** Process CPU seconds (all threads) per run. */
  cpuSeconds: number;
}

/** Runs `fn` once to warm up (skipped when `warmUp` is false), then until MIN_SECONDS. */
function timeIt(fn: () => void, warmUp: boolean): Timing {
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

function fillRandom(view: Float32Array): void {
  for (let i = 0; i < view.length; i++) view[i] = Math.random() - 0.5;
}

/** bf16 values in [-0.5, 0.5): the top half of an f32. */
function fillRandomBf16(view: Uint16Array): void {
  const f32 = new Float32Array(1);
  const bits = new Uint32Array(f32.buffer);
  for (let i = 0; i < view.length; i++) {
    f32[0] = Math.random() - 0.5;
    view[i] = bits[0] >>> 16;
  }
}

/** op(A) * op(B) with the i-j-p loop a first JavaScript implementation would write. */
function naiveGemmSeconds(shape: Shape): number {
  const m = NAIVE_ROWS;
  const n = Math.min(shape.n, NAIVE_COLS);
  const { k } = shape;
  const a = new Float32Array(m * k);
  const b = new Float32Array(k * n);
  const c = new Float32Array(m * n);
  fillRandom(a);
  fillRandom(b);
  const { seconds } = timeIt(() => {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let p = 0; p < k; p++) sum += a[i * k + p] * b[p * n + j];
        c[i * n + j] = sum;
      }
    }
  }, true);
  return seconds;
}

interface Result {
  shape: string;
  m: number;
  n: number;
  k: number;
  variant: string;
  threads: number;
  gflops: number;
  /**
   * Rate the threads reached while they actually ran (flops / CPU time per thread): what an idle
   * machine would show. Wall-clock `gflops` drops when other processes share the cores.
   */
  cpuTimeGflops: number;
  naiveGflops: number;
  speedup: number;
  /** `cpuTimeGflops` as a share of threads x the one-thread multiply-add ceiling. */
  ofCeiling: number;
}

function benchShape(runtimes: WasmRuntime[], shape: Shape, ceiling: number): Result[] {
  const { m, n, k } = shape;
  const naiveGflops = gflops(
    { m: NAIVE_ROWS, n: Math.min(n, NAIVE_COLS), k },
    naiveGemmSeconds(shape),
  );
  const results: Result[] = [];
  // All runtimes share nothing, so each gets its own copy of the operands.
  for (const rt of runtimes) {
    const a = rt.malloc(m * k * 4);
    const bF32 = rt.malloc(k * n * 4);
    const bBf16 = rt.malloc(k * n * 2);
    const c = rt.malloc(m * n * 4);
    fillRandom(rt.f32(a, m * k));
    fillRandom(rt.f32(bF32, k * n));
    fillRandomBf16(rt.u16(bBf16, k * n));
    for (const variant of VARIANTS) {
      const args: GemmArgs = {
        m,
        n,
        k,
        a,
        lda: variant.transA ? m : k,
        transA: variant.transA,
        aDtype: 'f32',
        b: variant.bDtype === 'f32' ? bF32 : bBf16,
        ldb: variant.transB ? k : n,
        transB: variant.transB,
        bDtype: variant.bDtype,
        c,
        ldc: n,
      };
      // The LM head takes seconds per run: no separate warm-up there.
      const { seconds, cpuSeconds } = timeIt(() => rt.gemm(args), m * n * k < 1e10);
      const rate = gflops(shape, seconds);
      const cpuTimeRate = gflops(shape, cpuSeconds / rt.threads);
      results.push({
        shape: shape.name,
        m,
        n,
        k,
        variant: variant.name,
        threads: rt.threads,
        gflops: rate,
        cpuTimeGflops: cpuTimeRate,
        naiveGflops,
        speedup: rate / naiveGflops,
        ofCeiling: cpuTimeRate / (ceiling * rt.threads),
      });
      console.log(
        `${`${shape.name} ${m}x${n}x${k}`.padEnd(28)} ${variant.name.padEnd(12)} ${String(rt.threads).padStart(2)}T ` +
          `${rate.toFixed(1).padStart(7)} GFLOP/s  ${(seconds * 1000).toFixed(1).padStart(8)} ms  ` +
          `(CPU-time rate ${cpuTimeRate.toFixed(1).padStart(5)}, ` +
          `${((100 * cpuTimeRate) / (ceiling * rt.threads)).toFixed(0)}% of ceiling)  ` +
          `x${(rate / naiveGflops).toFixed(0)} vs naive`,
      );
    }
    for (const ptr of [a, bF32, bBf16, c]) rt.free(ptr);
  }
  return results;
}

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: availableParallelism(),
  node: process.version,
  /** Other processes competing for the cores make wall-clock figures meaningless: shown for that. */
  loadAverage1m: loadavg()[0],
};
const runtimes = await Promise.all(THREADS.map((threads) => WasmRuntime.create({ threads })));
console.log(
  `machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, relaxed SIMD: ${runtimes[0].relaxed}, load average ${machine.loadAverage1m.toFixed(1)}`,
);
console.log(
  `naive: JS i-j-p loop over Float32Array on a ${NAIVE_ROWS} x min(n,${NAIVE_COLS}) x k slice of each shape ` +
    '(same flop rate assumed for the full shape)',
);
console.log(
  'CPU-time rate: flops / (process CPU seconds / threads), the rate while the threads actually ran; ' +
    'it matches wall-clock GFLOP/s when no other process competes for the cores',
);
const fmaCeiling = fmaCeilingGflops(runtimes[0]);
console.log(
  `ceiling: ${fmaCeiling.toFixed(1)} GFLOP/s per thread for wasm SIMD multiply-adds ` +
    '(12 independent f32x4 FMA chains on registers, no memory traffic); % of ceiling = CPU-time rate / (threads x ceiling)',
);
const results: Result[] = [];
for (const shape of SHAPES) {
  const shapeResults = benchShape(runtimes, shape, fmaCeiling);
  results.push(...shapeResults);
  console.log(`  naive JS: ${shapeResults[0].naiveGflops.toFixed(2)} GFLOP/s`);
}
for (const rt of runtimes) rt.dispose();
if (json)
  console.log(
    JSON.stringify({
      machine: { ...machine, relaxed: runtimes[0].relaxed },
      fmaCeilingGflopsPerThread: fmaCeiling,
      results,
    }),
  );
