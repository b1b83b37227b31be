/**
 * GEMM throughput of the wasm runtime on the model's shapes (Qwen2.5-0.5B-like projections, MLP
 * and LM head at 512 tokens), with 1 and 2 threads, next to a naive JavaScript triple loop run in
 * the same process. `--json` prints every figure as one JSON object on the last line.
 */
import '../src/engine/cpu/node-host.ts';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { WasmRuntime } from '../src/engine/cpu/runtime.ts';
import { fmaCeilingGflops } from './flops.ts';
import {
  FORMS,
  SHAPES,
  THREADS,
  fillRandom,
  gflops,
  timeIt,
  timeWasmForms,
  type Shape,
} from './gemm-common.ts';

/** The naive loop runs on NAIVE_ROWS x min(n, NAIVE_COLS) x k of each shape; its rate is what we compare. */
const NAIVE_ROWS = 8;
const NAIVE_COLS = 256;

const json = process.argv.includes('--json');

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
    const timings = timeWasmForms(rt, shape, FORMS);
    FORMS.forEach((form, f) => {
      const { seconds, cpuSeconds } = timings[f]!;
      const rate = gflops(shape, seconds);
      const cpuTimeRate = gflops(shape, cpuSeconds / rt.threads);
      results.push({
        shape: shape.name,
        m,
        n,
        k,
        variant: form.name,
        threads: rt.threads,
        gflops: rate,
        cpuTimeGflops: cpuTimeRate,
        naiveGflops,
        speedup: rate / naiveGflops,
        ofCeiling: cpuTimeRate / (ceiling * rt.threads),
      });
      console.log(
        `${`${shape.name} ${m}x${n}x${k}`.padEnd(28)} ${form.name.padEnd(12)} ${String(rt.threads).padStart(2)}T ` +
          `${rate.toFixed(1).padStart(7)} GFLOP/s  ${(seconds * 1000).toFixed(1).padStart(8)} ms  ` +
          `(CPU-time rate ${cpuTimeRate.toFixed(1).padStart(5)}, ` +
          `${((100 * cpuTimeRate) / (ceiling * rt.threads)).toFixed(0)}% of ceiling)  ` +
          `x${(rate / naiveGflops).toFixed(0)} vs naive`,
      );
    });
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
  `machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, kernels: ${runtimes[0].kernels}, load average ${machine.loadAverage1m.toFixed(1)}`,
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
    '(12 independent f32x4 FMA chains on registers, no memory traffic); % of ceiling = CPU-time rate / (threads x ceiling)' +
    (runtimes[0].kernels === 'wide'
      ? "; the wide build's GEMM runs as 256-bit AVX2 code (V8's revectorizer) and can pass this 128-bit ceiling: LORAFORGE_WASM_REVECTORIZE=0 gives the relaxed build for comparison"
      : ''),
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
      machine: { ...machine, kernels: runtimes[0].kernels },
      fmaCeilingGflopsPerThread: fmaCeiling,
      results,
    }),
  );
