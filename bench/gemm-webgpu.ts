/**
 * `bench:gemm -- --device webgpu`: the WebGPU GEMM on the 0.5B model's shapes at 512 tokens
 * (bf16 weights read transposed, x W^T, as the model runs them), the first kernel (`legacy`) beside
 * the plan the tuner gives this adapter, in the same process, runs interleaved so that a change in
 * machine load hits both. Reports wall-clock GFLOP/s and, for CPU adapters such as lavapipe (whose
 * threads run in this process), the CPU-time rate, which another process's load does not move.
 * `--json` prints one JSON object on the last line.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { WebGpuKernels } from '../src/engine/webgpu/kernels.ts';
import { LEGACY_GEMM_PLAN, type GemmPlan } from '../src/engine/webgpu/gemm.ts';
import { tileName } from '../src/engine/webgpu/gemm-tiled.ts';
import { isHardwareAdapter } from '../src/engine/webgpu/device.ts';
import { fileTuneStore } from '../src/engine/webgpu/tune-store-file.ts';
import { argValue, emitJson, say } from './common.ts';

const SHAPES = [
  { name: 'attn proj', m: 512, n: 896, k: 896 },
  { name: 'mlp up', m: 512, n: 4864, k: 896 },
  { name: 'mlp down', m: 512, n: 896, k: 4864 },
  // One vocabulary chunk of the fused LM-head loss (16 MiB of f32 logits at 512 rows).
  { name: 'lm head chunk', m: 512, n: 8192, k: 896 },
];
const ROUNDS = argValue('--rounds', 3);

const kernels = await WebGpuKernels.create({ store: fileTuneStore() });
const tuned = kernels.gemmPlan;
const { adapterInfo } = kernels.context;
const software = !isHardwareAdapter(adapterInfo);
const planName = (plan: GemmPlan) =>
  plan.legacy
    ? 'legacy'
    : Object.entries(plan.tiles)
        .map(([cls, tile]) => `${cls}=${tileName(tile)}`)
        .join(',');
say(
  `adapter: ${adapterInfo.description || adapterInfo.device} (${software ? 'software' : 'hardware'}), ` +
    `shader-f16=${kernels.context.shaderF16} subgroups=${kernels.context.subgroups}, ` +
    `subgroup matrices: ${kernels.context.subgroupMatrixConfigs.map((c) => `${c.M}x${c.N}x${c.K} ${c.component}`).join(', ') || 'none'}, ` +
    `load average ${loadavg()[0]!.toFixed(1)}`,
);
say(`new: ${planName(tuned)}; old: the first kernel (64x64 tiles, 4x4 per thread, scalar loads)`);

const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
const results = [];
for (const shape of SHAPES) {
  const { m, n, k } = shape;
  const a = kernels.device.createBuffer({ size: m * k * 4, usage });
  const b = kernels.device.createBuffer({ size: n * k * 2, usage });
  const c = kernels.device.createBuffer({ size: m * n * 4, usage });
  kernels.write(
    a,
    Float32Array.from({ length: m * k }, () => Math.random() - 0.5),
  );
  kernels.write(
    b,
    Uint16Array.from({ length: n * k }, () => 0x3c00 + Math.floor(Math.random() * 0x200)),
  );
  const best = { old: { wall: Infinity, cpu: Infinity }, new: { wall: Infinity, cpu: Infinity } };
  const run = async (plan: GemmPlan) => {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    kernels.gemmPlan = plan;
    kernels.gemm({ a, b, c, m, n, k, transB: true, bDtype: 'bf16' });
    await kernels.read(c, 4);
    const cpu = process.cpuUsage(cpuStart);
    return { wall: (performance.now() - start) / 1000, cpu: (cpu.user + cpu.system) / 1e6 };
  };
  // Round 0 compiles and warms both kernels; later rounds keep each kernel's best time.
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [which, plan] of [
      ['old', LEGACY_GEMM_PLAN],
      ['new', tuned],
    ] as const) {
      const t = await run(plan);
      if (round === 0) continue;
      best[which].wall = Math.min(best[which].wall, t.wall);
      best[which].cpu = Math.min(best[which].cpu, t.cpu);
    }
  }
  for (const buffer of [a, b, c]) buffer.destroy();
  const gflop = (2 * m * n * k) / 1e9;
  const result = {
    shape: shape.name,
    m,
    n,
    k,
    oldGflops: gflop / best.old.wall,
    newGflops: gflop / best.new.wall,
    speedup: best.old.wall / best.new.wall,
    oldCpuTimeGflops: gflop / best.old.cpu,
    newCpuTimeGflops: gflop / best.new.cpu,
    cpuTimeSpeedup: best.old.cpu / best.new.cpu,
  };
  results.push(result);
  say(
    `${`${shape.name} ${m}x${n}x${k}`.padEnd(30)} old ${result.oldGflops.toFixed(2).padStart(8)} GFLOP/s  ` +
      `new ${result.newGflops.toFixed(2).padStart(8)} GFLOP/s  x${result.speedup.toFixed(2)}` +
      (software
        ? `   (CPU-time: old ${result.oldCpuTimeGflops.toFixed(2)}, new ${result.newCpuTimeGflops.toFixed(2)}, x${result.cpuTimeSpeedup.toFixed(2)})`
        : ''),
  );
}
const geomean = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(x), 0) / xs.length);
const summary = {
  speedupGeomean: geomean(results.map((r) => r.speedup)),
  cpuTimeSpeedupGeomean: geomean(results.map((r) => r.cpuTimeSpeedup)),
};
say(
  `geometric mean speedup: x${summary.speedupGeomean.toFixed(2)} wall-clock` +
    (software ? `, x${summary.cpuTimeSpeedupGeomean.toFixed(2)} CPU-time` : ''),
);
kernels.destroy();
emitJson({
  device: 'webgpu',
  adapter: adapterInfo,
  software,
  loadAverage1m: loadavg()[0],
  plan: planName(tuned),
  results,
  ...summary,
});
