/**
 * `bench:ops -- --device webgpu`: the WebGPU attention and reduction kernels at one Qwen2-0.5B
 * layer's sizes (batch 8 x 64 tokens, 14 heads / 2 kv heads of dim 64, hidden 896; `--seq` more
 * token counts, e.g. `--seq 64,256`) plus one decode step against a 2048-token cache, each beside
 * its baseline in the same process, interleaved so that a change in machine load hits all:
 * attention as the first kernels (attention-webgpu-legacy.ts, the baseline), the row kernels and
 * the block-tiled ones (staged, and `.s8` where subgroups are exactly 8), reductions on subgroups
 * against the workgroup-memory tree (where the adapter has subgroups). Reports the best
 * wall-clock and, for CPU adapters such as lavapipe (whose threads run in this process), CPU time
 * per call, each against the baseline. `--json` prints one JSON object last.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { WebGpuKernels } from '../src/engine/webgpu/kernels.ts';
import { attention } from '../src/engine/webgpu/attention.ts';
import { legacyAttention } from './attention-webgpu-legacy.ts';
import { rmsnorm } from '../src/engine/webgpu/rmsnorm.ts';
import { crossEntropy } from '../src/engine/webgpu/cross-entropy.ts';
import { KernelRunner } from '../src/engine/webgpu/runner.ts';
import { isHardwareAdapter } from '../src/engine/webgpu/device.ts';
import type { GpuArg } from '../src/engine/webgpu/kernel-table.ts';
import {
  attentionPlanName,
  attentionPlanOf,
  parseAttentionPlan,
  useAttentionPlan,
  whyAttentionCannotRun,
} from '../src/engine/webgpu/attention-plan.ts';
import { argValue, emitJson, say } from './common.ts';

const [BATCH, SEQ, HEADS, KV_HEADS, HEAD_DIM, HIDDEN] = [8, 64, 14, 2, 64, 896];
const seqArg = process.argv.indexOf('--seq');
const SEQS = seqArg > 0 ? process.argv[seqArg + 1]!.split(',').map(Number) : [SEQ];
const DECODE_CACHE = 2048;
const CE_CHUNK = 8192;
const ROUNDS = argValue('--rounds', 3);

const gpu = await WebGpuKernels.create({ gemm: 'default' });
const { device, runner } = gpu;
const software = !isHardwareAdapter(gpu.context.adapterInfo);
const treeRunner = new KernelRunner(device, { subgroups: false });
say(
  `adapter: ${gpu.context.adapterInfo.description || gpu.context.adapterInfo.device} (${software ? 'software' : 'hardware'}), ` +
    `subgroups=${gpu.context.subgroups}, load average ${loadavg()[0]!.toFixed(1)}`,
);

const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
function f32(count: number, fill?: () => number): GpuArg {
  const buffer = device.createBuffer({ size: Math.max(16, count * 4), usage });
  if (fill) gpu.write(buffer, Float32Array.from({ length: count }, fill));
  return { buffer, offset: 0, dtype: 'f32', bytes: buffer.size };
}
function i32(values: number[]): GpuArg {
  const buffer = device.createBuffer({ size: Math.max(16, values.length * 4), usage });
  gpu.write(buffer, Int32Array.from(values));
  return { buffer, offset: 0, dtype: 'i32', bytes: buffer.size };
}
const normal = () => Math.random() * 2 - 1;

const tokens = BATCH * SEQ;
const maxTokens = BATCH * Math.max(...SEQS);
const [q, dout] = [0, 1].map(() => f32(maxTokens * HEADS * HEAD_DIM, normal));
const [k, v] = [0, 1].map(() => f32(maxTokens * KV_HEADS * HEAD_DIM, normal));
const [out, dq] = [0, 1].map(() => f32(maxTokens * HEADS * HEAD_DIM));
const [dk, dv] = [0, 1].map(() => f32(maxTokens * KV_HEADS * HEAD_DIM));
const lse = f32(BATCH * HEADS * Math.max(...SEQS));
const cacheK = f32(DECODE_CACHE * KV_HEADS * HEAD_DIM, normal);
const cacheV = f32(DECODE_CACHE * KV_HEADS * HEAD_DIM, normal);
const decodeQ = f32(HEADS * HEAD_DIM, normal);
const [decodeOut, decodeLse] = [f32(HEADS * HEAD_DIM), f32(HEADS)];
const [x, normOut, hiddenGrad, dx] = [0, 1, 2, 3].map(() => f32(tokens * HIDDEN, normal));
const [normWeight, rstd] = [f32(HIDDEN, normal), f32(tokens)];
const logits = f32(tokens * CE_CHUNK, normal);
const targets = i32(Array.from({ length: tokens }, (_, i) => (i * 7919) % CE_CHUNK));
const [runMax, runSum, tgtLogit] = [0, 1, 2].map(() => f32(tokens));

const masks = { keyMask: null, segIds: null };
const shape = { B: BATCH, H: HEADS, KVH: KV_HEADS, D: HEAD_DIM, scale: 0.125, window: 0 };
type Impl = typeof attention;
const forward = (impl: Impl, r: KernelRunner, T: number) => () =>
  impl.attentionForward({ q, k, v, out, lse, ...masks }, { ...shape, Tq: T, Tk: T, kvCap: T }, r);
const backward = (impl: Impl, r: KernelRunner, T: number) => () =>
  impl.attentionBackward({ q, k, v, out, lse, dout, dq, dk, dv, ...masks }, { ...shape, T }, r);
const decode = (impl: Impl, r: KernelRunner) => () =>
  impl.attentionForward(
    { q: decodeQ, k: cacheK, v: cacheV, out: decodeOut, lse: decodeLse, ...masks },
    { ...shape, B: 1, Tq: 1, Tk: DECODE_CACHE, kvCap: DECODE_CACHE },
    r,
  );
/** The current kernels' plans this adapter runs, each on a runner of its own. */
const planRunners = ['row', 'tiled', 'tiled.s8']
  .map(parseAttentionPlan)
  .filter((plan) => !whyAttentionCannotRun(gpu.context, plan))
  .map((plan) => {
    const r = new KernelRunner(device);
    useAttentionPlan(r, plan);
    return { name: attentionPlanName(plan), runner: r };
  });
say(
  `attention plan the tuner gives this adapter ("tuned" below): ${attentionPlanName(attentionPlanOf(runner))}`,
);
/** Attention variants of one call: the legacy kernels (the baseline), every plan, the tuner's. */
const attentionVariants = (make: (impl: Impl, r: KernelRunner) => () => void) => [
  { label: 'legacy', run: make(legacyAttention, runner), runners: [runner] },
  ...planRunners.map((p) => ({
    label: p.name,
    run: make(attention, p.runner),
    runners: [p.runner],
  })),
  { label: 'tuned', run: make(attention, runner), runners: [runner] },
];
const norm = (r: KernelRunner) => () => {
  rmsnorm.rmsnormForward(
    { x, w: normWeight, out: normOut, rstd },
    { rows: tokens, dim: HIDDEN, eps: 1e-6 },
    r,
  );
  rmsnorm.rmsnormBackward(
    { x, w: normWeight, rstd, dout: hiddenGrad, dx, dw: null },
    { rows: tokens, dim: HIDDEN },
    r,
  );
};
const ceChunk = (r: KernelRunner) => () =>
  crossEntropy.ceOnlineChunk(
    { logits, targets, runMax, runSum, tgtLogit, acc: null },
    { rows: tokens, cols: CE_CHUNK, colOffset: 0, accCols: 0 },
    r,
  );

interface Variant {
  label: string;
  run: () => void;
  runners: KernelRunner[];
}
const cases: { name: string; variants: Variant[] }[] = [
  ...SEQS.flatMap((T) => [
    {
      name: `attention forward (T ${T})`,
      variants: attentionVariants((impl, r) => forward(impl, r, T)),
    },
    {
      name: `attention backward (T ${T})`,
      variants: attentionVariants((impl, r) => backward(impl, r, T)),
    },
  ]),
  {
    name: `attention decode (1 x ${DECODE_CACHE} keys)`,
    variants: attentionVariants(decode),
  },
  ...(gpu.context.subgroups
    ? [
        {
          name: 'rmsnorm forward + dx',
          variants: [
            { label: 'tree', run: norm(treeRunner), runners: [treeRunner] },
            { label: 'subgroups', run: norm(runner), runners: [runner] },
          ],
        },
        {
          name: 'cross-entropy chunk',
          variants: [
            { label: 'tree', run: ceChunk(treeRunner), runners: [treeRunner] },
            { label: 'subgroups', run: ceChunk(runner), runners: [runner] },
          ],
        },
      ]
    : []),
];

/** Seconds (wall, CPU) of one call, run to completion. */
async function time(run: () => void, runners: KernelRunner[]) {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  run();
  for (const r of runners) r.flush();
  await device.queue.onSubmittedWorkDone();
  const cpu = process.cpuUsage(cpuStart);
  return { wall: (performance.now() - start) / 1000, cpu: (cpu.user + cpu.system) / 1e6 };
}

const results = [];
for (const c of cases) {
  const best = c.variants.map(() => ({ wall: Infinity, cpu: Infinity }));
  // Round 0 compiles and warms every variant; later rounds keep each one's best time.
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [i, variant] of c.variants.entries()) {
      const t = await time(variant.run, variant.runners);
      if (round === 0) continue;
      best[i]!.wall = Math.min(best[i]!.wall, t.wall);
      best[i]!.cpu = Math.min(best[i]!.cpu, t.cpu);
    }
  }
  const [base] = best;
  // Attention variants also against the row kernels (the current default elsewhere).
  const row = best[c.variants.findIndex((v) => v.label === 'row')];
  const variants = c.variants.map((variant, i) => ({
    label: variant.label,
    ms: best[i]!.wall * 1e3,
    speedup: base!.wall / best[i]!.wall,
    cpuTimeSpeedup: base!.cpu / best[i]!.cpu,
    ...(row && { vsRow: row.wall / best[i]!.wall }),
  }));
  results.push({ name: c.name, variants });
  say(c.name);
  for (const r of variants) {
    say(
      `  ${r.label.padEnd(18)} ${r.ms.toFixed(1).padStart(9)} ms  x${r.speedup.toFixed(2)}` +
        (software ? `   (CPU-time x${r.cpuTimeSpeedup.toFixed(2)})` : '') +
        (r.vsRow ? `   vs row x${r.vsRow.toFixed(2)}` : ''),
    );
  }
}
gpu.destroy();
emitJson({
  device: 'webgpu',
  adapter: gpu.context.adapterInfo,
  software,
  loadAverage1m: loadavg()[0],
  results,
});
