/**
 * Time per call of the non-GEMM CPU kernels at one Qwen2-0.5B layer's sizes (batch 8 x 64 tokens,
 * hidden 896, 14 heads / 2 kv heads of dim 64, intermediate 4864) and of the cross-entropy chunk
 * kernels, each as a share of that layer's forward GEMM time (its 7 projections at M = 512,
 * f32 weights in nn.Linear [out, in] layout) measured in the same run on the same thread pool.
 * Each CPU backend of `--backends native,wasm` (default: both when there is a native build) runs
 * in turn in this process, on all cores; the table puts them side by side.
 * `--json` prints every figure as one JSON object on the last line. `--device webgpu` times the
 * WebGPU attention and reduction kernels against their baselines instead (ops-webgpu.ts).
 */
import '../src/engine/cpu/node-host.ts';
import { availableParallelism, cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Operand, Storage } from '../src/engine/backend.ts';
import { f32ToBf16 } from '../src/engine/half.ts';
import { defaultInverseFrequencies } from '../src/models/rope-frequencies.ts';
import { lmHeadLoss } from '../src/engine/ops/lm-head-loss.ts';
import { backward } from '../src/engine/tape.ts';
import { Tensor, setBackend, tidy } from '../src/engine/tensor.ts';
import { cpuBackendNames, createCpuBackend, type CpuBackendName } from './common.ts';

const BATCH = 8;
const SEQ = 64;
const TOKENS = BATCH * SEQ;
const HIDDEN = 896;
const HEADS = 14;
const KV_HEADS = 2;
const HEAD_DIM = 64;
const INTERMEDIATE = 4864;
const ROPE_THETA = 1e6;
/** Vocabulary columns per cross-entropy chunk (Qwen2's 151936 ids take 19 such chunks). */
const CE_CHUNK = 8192;
/** Each measurement repeats until this much time has passed, after one warm-up call. */
const MIN_SECONDS = 0.3;

const PROJECTIONS = [
  { name: 'q', inFeatures: HIDDEN, outFeatures: HEADS * HEAD_DIM },
  { name: 'k', inFeatures: HIDDEN, outFeatures: KV_HEADS * HEAD_DIM },
  { name: 'v', inFeatures: HIDDEN, outFeatures: KV_HEADS * HEAD_DIM },
  { name: 'o', inFeatures: HEADS * HEAD_DIM, outFeatures: HIDDEN },
  { name: 'gate', inFeatures: HIDDEN, outFeatures: INTERMEDIATE },
  { name: 'up', inFeatures: HIDDEN, outFeatures: INTERMEDIATE },
  { name: 'down', inFeatures: INTERMEDIATE, outFeatures: HIDDEN },
];

const json = process.argv.includes('--json');
const log = (line: string): void => {
  if (!json) console.log(line);
};

function secondsPerCall(fn: () => void): number {
  fn();
  let calls = 0;
  const start = performance.now();
  do {
    fn();
    calls++;
  } while (performance.now() - start < MIN_SECONDS * 1000);
  return (performance.now() - start) / 1000 / calls;
}

if (process.argv[process.argv.indexOf('--device') + 1] === 'webgpu') {
  await import('./ops-webgpu.ts');
  // Its output is written (stdout is synchronous for files and pipes on POSIX); skip the CPU run.
  process.exit(0);
}

/** One backend's figures. */
interface BackendRun {
  /** What the backend says it is (variant, threads). */
  backend: string;
  layerGemmMs: number;
  gemm: Array<{ name: string; ms: number }>;
  ops: Array<{ name: string; ms: number; shareOfLayerGemm: number }>;
}

/** Every figure on the CPU backend `name`, on all cores. */
async function measure(name: CpuBackendName): Promise<BackendRun> {
  const backend = await createCpuBackend(name, availableParallelism());
  setBackend(backend);
  const { runtime, kernels } = backend;

  /** The whole of a fresh allocation of n elements, as a kernel operand. */
  function alloc(n: number, dtype: 'f32' | 'i32' = 'f32'): Operand {
    return { storage: backend.alloc(n * 4), byteOffset: 0, dtype };
  }

  function pointer(o: Operand): number {
    return (o.storage as Storage & { ptr: number }).ptr;
  }

  /** A buffer of n random f32 values in [-1, 1). */
  function randomF32(n: number): Operand {
    const o = alloc(n);
    const view = runtime.f32(pointer(o), n);
    for (let i = 0; i < n; i++) view[i] = Math.random() * 2 - 1;
    return o;
  }

  function f32Table(values: Float32Array): Operand {
    const o = alloc(values.length);
    runtime.f32(pointer(o), values.length).set(values);
    return o;
  }

  function int32(values: ArrayLike<number>): Operand {
    const o = alloc(values.length, 'i32');
    runtime.i32(pointer(o), values.length).set(values);
    return o;
  }

  // One layer's forward projections.
  const gemmTimes = PROJECTIONS.map(({ name, inFeatures, outFeatures }) => {
    const input = randomF32(TOKENS * inFeatures);
    const weight = randomF32(outFeatures * inFeatures);
    const output = alloc(TOKENS * outFeatures);
    const seconds = secondsPerCall(() =>
      runtime.gemm({
        m: TOKENS,
        n: outFeatures,
        k: inFeatures,
        a: pointer(input),
        lda: inFeatures,
        transA: false,
        aDtype: 'f32',
        b: pointer(weight),
        ldb: inFeatures,
        transB: true,
        bDtype: 'f32',
        c: pointer(output),
        ldc: outFeatures,
      }),
    );
    return { name: `${name} ${TOKENS}x${outFeatures}x${inFeatures}`, ms: seconds * 1000 };
  });
  const layerGemmMs = gemmTimes.reduce((sum, g) => sum + g.ms, 0);

  // Operands of the other kernels.
  const qSize = TOKENS * HEADS * HEAD_DIM;
  const kvSize = TOKENS * KV_HEADS * HEAD_DIM;
  const [q, k, v, dout] = [qSize, kvSize, kvSize, qSize].map(randomF32);
  const [attnOut, dq] = [qSize, qSize].map((n) => alloc(n));
  const [dk, dv] = [kvSize, kvSize].map((n) => alloc(n));
  const lse = alloc(BATCH * HEADS * SEQ);
  const positions = int32(Array.from({ length: TOKENS }, (_, i) => i % SEQ));
  const invFreq = f32Table(defaultInverseFrequencies(HEAD_DIM, ROPE_THETA));
  const [x, hiddenGrad, normWeight] = [TOKENS * HIDDEN, TOKENS * HIDDEN, HIDDEN].map(randomF32);
  const [normOut, dx] = [TOKENS * HIDDEN, TOKENS * HIDDEN].map((n) => alloc(n));
  const rstd = alloc(TOKENS);
  const normWeightGrad = alloc(HIDDEN);
  const mlpSize = TOKENS * INTERMEDIATE;
  const [gate, up, mlpGrad] = [mlpSize, mlpSize, mlpSize].map(randomF32);
  const [mlpOut, dgate, dup] = [mlpSize, mlpSize, mlpSize].map((n) => alloc(n));
  const logits = randomF32(TOKENS * CE_CHUNK);
  const targets = int32(Array.from({ length: TOKENS }, (_, i) => (i * 7919) % CE_CHUNK));
  const [runMax, runSum, tgtLogit, rowLse, rowScale] = [0, 1, 2, 3, 4].map(() => alloc(TOKENS));
  const acc = randomF32(TOKENS * HIDDEN);
  runtime.f32(pointer(rowLse), TOKENS).fill(Math.log(CE_CHUNK) + 1);
  runtime.f32(pointer(rowScale), TOKENS).fill(1 / TOKENS);
  const scale = 1 / Math.sqrt(HEAD_DIM);

  const attention = { B: BATCH, H: HEADS, KVH: KV_HEADS, D: HEAD_DIM, scale, window: 0 };
  const masks = { keyMask: null, segIds: null };
  const rope = (x: Operand, H: number, inverse: boolean) =>
    kernels.ropeApply(
      { x, out: x, positions, invFreq },
      { B: BATCH, T: SEQ, H, D: HEAD_DIM, inverse, rotaryDim: HEAD_DIM, scale: 1 },
    );
  const ops: Array<{ name: string; run: () => void }> = [
    {
      name: 'attention forward',
      run: () =>
        kernels.attentionForward(
          { q, k, v, out: attnOut, lse, ...masks },
          { ...attention, Tq: SEQ, Tk: SEQ, kvCap: SEQ },
        ),
    },
    {
      name: 'attention backward',
      run: () =>
        kernels.attentionBackward(
          { q, k, v, out: attnOut, lse, dout, dq, dk, dv, ...masks },
          { ...attention, T: SEQ },
        ),
    },
    {
      name: 'rmsnorm forward',
      run: () =>
        kernels.rmsnormForward(
          { x, w: normWeight, out: normOut, rstd },
          { rows: TOKENS, dim: HIDDEN, eps: 1e-6 },
        ),
    },
    {
      name: 'rmsnorm backward (+dw)',
      run: () =>
        kernels.rmsnormBackward(
          { x, w: normWeight, rstd, dout: hiddenGrad, dx, dw: normWeightGrad },
          { rows: TOKENS, dim: HIDDEN },
        ),
    },
    {
      name: 'rope q+k forward',
      run: () => {
        rope(q, HEADS, false);
        rope(k, KV_HEADS, false);
      },
    },
    {
      name: 'rope q+k backward',
      run: () => {
        rope(dq, HEADS, true);
        rope(dk, KV_HEADS, true);
      },
    },
    {
      name: 'swiglu forward',
      run: () =>
        kernels.gatedForward({ gate, up, out: mlpOut }, { n: mlpSize, activation: 'silu' }),
    },
    {
      name: 'swiglu backward',
      run: () =>
        kernels.gatedBackward(
          { gate, up, dout: mlpGrad, dgate, dup },
          { n: mlpSize, activation: 'silu' },
        ),
    },
    {
      name: `ce online chunk ${TOKENS}x${CE_CHUNK}`,
      run: () => {
        runtime.f32(pointer(runMax), TOKENS).fill(-Infinity);
        runtime.f32(pointer(runSum), TOKENS).fill(0);
        kernels.ceOnlineChunk(
          { logits, targets, runMax, runSum, tgtLogit, acc },
          { rows: TOKENS, cols: CE_CHUNK, colOffset: 0, accCols: HIDDEN },
        );
      },
    },
    // In place, so every call after the first sees gradients as logits: same cost.
    {
      name: `ce chunk backward ${TOKENS}x${CE_CHUNK}`,
      run: () =>
        kernels.ceChunkBackward(
          { logits, targets, lse: rowLse, rowScale },
          { rows: TOKENS, cols: CE_CHUNK, colOffset: 0 },
        ),
    },
  ];

  // The whole fused LM-head loss (the GEMMs over the 151,936-token vocabulary included), forward and
  // backward, through the engine: 8 x 64 tokens with the first 32 of each row unsupervised.
  const vocab = 151936;
  const hidden = Tensor.from(
    Float32Array.from({ length: TOKENS * HIDDEN }, () => Math.random() - 0.5),
    [TOKENS, HIDDEN],
  );
  hidden.requiresGrad = true;
  const head = Tensor.from(
    f32ToBf16(Float32Array.from({ length: vocab * HIDDEN }, () => (Math.random() - 0.5) * 0.05)),
    [vocab, HIDDEN],
    'bf16',
  );
  const lmTargets = Int32Array.from({ length: TOKENS }, (_, i) =>
    i % SEQ < SEQ / 2 ? -100 : (i * 7919) % vocab,
  );
  ops.push({
    name: `fused LM-head loss fwd+bwd (${TOKENS / 2} of ${TOKENS} rows, vocab ${vocab}, bf16)`,
    run: () => {
      tidy(() => backward(lmHeadLoss(hidden, head, lmTargets).loss));
      hidden.grad?.dispose();
      hidden.grad = null;
    },
  });

  const results = ops.map(({ name, run }) => {
    const ms = secondsPerCall(run) * 1000;
    return { name, ms, shareOfLayerGemm: ms / layerGemmMs };
  });
  hidden.dispose();
  head.dispose();
  const described = backend.describe();
  backend.dispose();
  return { backend: described, layerGemmMs, gemm: gemmTimes, ops: results };
}

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: availableParallelism(),
  node: process.version,
};
log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}`);
const runs: Partial<Record<CpuBackendName, BackendRun>> = {};
for (const name of cpuBackendNames()) {
  const run = await measure(name);
  runs[name] = run;
  log(`${name}: ${run.backend}`);
  log(
    `  layer GEMM (7 forward projections, M=${TOKENS}, f32 weights): ${run.layerGemmMs.toFixed(2)} ms`,
  );
  for (const g of run.gemm) log(`    ${g.name.padEnd(24)} ${g.ms.toFixed(2).padStart(8)} ms`);
}

// One row per op: each backend's time and share of its own layer GEMM, then wasm / native.
const measured = Object.entries(runs) as Array<[CpuBackendName, BackendRun]>;
const both = runs.native && runs.wasm;
const nameWidth = Math.max(...measured[0]![1].ops.map(({ name }) => name.length)) + 2;
log(
  `${'op'.padEnd(nameWidth)}${measured.map(([name]) => `${name.padStart(10)} ms  of GEMM`).join('')}${both ? '  wasm/native' : ''}`,
);
measured[0]![1].ops.forEach(({ name }, i) => {
  const cells = measured.map(([, run]) => {
    const { ms, shareOfLayerGemm } = run.ops[i]!;
    return `${ms.toFixed(3).padStart(13)}  ${(100 * shareOfLayerGemm).toFixed(1).padStart(6)}%`;
  });
  const ratio = both
    ? `${(runs.wasm!.ops[i]!.ms / runs.native!.ops[i]!.ms).toFixed(2).padStart(12)}x`
    : '';
  log(`${name.padEnd(nameWidth)}${cells.join('')}${ratio}`);
});

if (json) {
  console.log(
    JSON.stringify({
      machine,
      shape: {
        batch: BATCH,
        seq: SEQ,
        hidden: HIDDEN,
        heads: HEADS,
        kvHeads: KV_HEADS,
        headDim: HEAD_DIM,
        intermediate: INTERMEDIATE,
        ceChunk: CE_CHUNK,
      },
      backends: runs,
    }),
  );
}
