/**
 * LoRA training throughput on a Qwen2-0.5B-shaped model: bf16 frozen weights, r = 8 on all seven
 * projections, batch 8 × 64 tokens with the first 32 positions of each row labelled -100 (the
 * Hugging Face + PEFT reference setup). Reports seconds per step, tokens/s, CPU seconds per step (all threads) and peak RSS, with the
 * same step on 1 thread measured in the same run as the baseline.
 *   npm run bench:train [-- --arch qwen2-0.5b|qwen3-0.6b|gemma3-1b --steps N --threads T
 *                           --device cpu|webgpu --backends native,wasm --json]
 * On the CPU the native and wasm backends run side by side (`--backends`, default both when the
 * native build exists), each in a child process of its own (its own peak RSS), without the
 * 1-thread baseline; the native / wasm ratio of tokens/s is reported. With one backend the
 * 1-thread baseline runs on the same backend.
 * With --device webgpu the same-run baseline is the CPU backend on T threads, and the step also
 * runs on the first WebGPU GEMM kernel (`old kernels`, skip with --no-old-kernels) beside the
 * tuned ones; the device memory the buffer pool held at its peak is reported.
 * More options (for the GPU benchmark, scripts/device/gpu-bench.sh):
 *   --model DIR        a model folder instead of the 0.5B-shaped random one (ids wrap to its vocab)
 *   --no-baseline      skip the CPU baseline
 *   --optimizer        also time the Trainer's whole step (loss read, backward, clip to 1.0,
 *                      AdamW, zero grads), as HF's loop and Trainer do; reported as trainer*
 *   --max-seconds S    stop a timed phase after S seconds (at least one step after the warm-up)
 *   --progress         with --json, the progress lines go to stderr
 *   --dropout P        LoRA dropout (default 0, as in HF's reference setup)
 *   --dora             DoRA (use_dora) instead of plain LoRA
 *   --bf16             bf16 mixed precision as `train`'s bf16 option: native GEMMs of the bf16
 *                      weights with bf16 products (VDPBF16PS) instead of exact f32 ones
 *                      (--bf16-gemm: the same)
 */
import type { Backend } from '../src/engine/backend.ts';
import { WebGpuBackend } from '../src/engine/webgpu/backend.ts';
import { WebGpuKernels } from '../src/engine/webgpu/kernels.ts';
import { fileTuneStore } from '../src/engine/webgpu/tune-store-file.ts';
import { backward, gradSlot } from '../src/engine/tape.ts';
import { setBackend, tidyAsync } from '../src/engine/tensor.ts';
import { loadModel } from '../src/models/load.ts';
import { LoraAdapter } from '../src/peft/adapter.ts';
import { makeLoraConfig } from '../src/peft/config.ts';
import { createTrainerOptimizer } from '../src/train/trainer-optimizer.ts';
import { WasmRuntime } from '../src/engine/cpu/runtime.ts';
import { parseDecoderConfig } from '../src/models/config.ts';
import { readModelConfig } from '../src/io/hf-folder.ts';
import { fmaCeilingGflops, loraStepFlops } from './flops.ts';
import { Rng } from '../src/util/rng.ts';
import {
  argValue,
  benchArch,
  cpuBackendNames,
  createCpuBackend,
  emitJson,
  jsonMode,
  peakRss,
  printMachine,
  randomBenchModel,
  runPerBackend,
  say,
} from './common.ts';

const BATCH = 8;
const SEQ = 64;
const PROMPT = 32;
const steps = argValue('--steps', 3);
const threads = argValue('--threads', 2);
const device = process.argv.includes('--device')
  ? process.argv[process.argv.indexOf('--device') + 1]!
  : 'cpu';
const modelArg = process.argv.includes('--model')
  ? process.argv[process.argv.indexOf('--model') + 1]!
  : undefined;
const withBaseline = !process.argv.includes('--no-baseline');
const withUpdate = process.argv.includes('--optimizer');
const maxSeconds = argValue('--max-seconds', Infinity);
const loraDropout = argValue('--dropout', 0);
const useDora = process.argv.includes('--dora');
const progress = (line: string): void => {
  if (jsonMode && process.argv.includes('--progress')) console.error(line);
  else say(line);
};

printMachine();
const dir = modelArg ?? randomBenchModel();
const cpuBackends = device === 'cpu' ? cpuBackendNames() : [];
if (cpuBackends.length > 1) {
  compareCpuBackends();
  process.exit(0);
}
/** The CPU backend this run measures. */
const cpuBackend = cpuBackends[0] ?? 'wasm';

interface Timed {
  secondsPerStep: number;
  firstStep: number;
  stepSeconds: number[];
  /**
   * CPU seconds of the process per step (all threads, mean of the steps after the first): on a
   * machine shared with other work the wall clock measures the others too, this far less.
   */
  cpuSecondsPerStep: number;
}

/** Runs `step` up to `stepCount` times; the first is the warm-up, the rest are averaged. */
async function timeSteps(
  label: string,
  stepCount: number,
  step: () => Promise<void>,
): Promise<Timed> {
  const times: number[] = [];
  const cpuTimes: number[] = [];
  const phaseStart = performance.now();
  for (let s = 0; s < stepCount; s++) {
    const start = performance.now();
    const cpuStart = process.cpuUsage();
    await step();
    times.push((performance.now() - start) / 1000);
    const cpu = process.cpuUsage(cpuStart);
    cpuTimes.push((cpu.user + cpu.system) / 1e6);
    progress(
      `  ${label} step ${s + 1}: ${times.at(-1)!.toFixed(2)} s (CPU ${cpuTimes.at(-1)!.toFixed(2)} s)`,
    );
    if (times.length >= 2 && (performance.now() - phaseStart) / 1000 > maxSeconds) break;
  }
  const mean = (xs: number[]) => {
    const steady = xs.length > 1 ? xs.slice(1) : xs;
    return steady.reduce((a, b) => a + b, 0) / steady.length;
  };
  return {
    secondsPerStep: mean(times),
    firstStep: times[0]!,
    stepSeconds: times,
    cpuSecondsPerStep: mean(cpuTimes),
  };
}

async function measure(
  makeBackend: () => Promise<Backend>,
  label: string,
  stepCount: number,
  timeUpdate: boolean,
): Promise<Timed & { update?: Timed; deviceMemory?: WebGpuBackend['deviceMemory'] }> {
  const backend = await makeBackend();
  setBackend(backend);
  const model = loadModel(dir, { dtype: 'bf16' });
  const vocab = model.config.vocabSize;
  const adapter = LoraAdapter.create(
    model,
    makeLoraConfig({ r: 8, loraAlpha: 16, loraDropout, targetModules: 'all-linear', useDora }),
    0,
  );
  adapter.attach(model);
  adapter.setTrainable(true);
  // As the Trainer does: each LoRA projection's dropout mask gets its own seed.
  const seeds = new Rng(0);
  model.dropoutSeeds = () => seeds.nextU32();
  const wrap = Math.min(150000, vocab - 1);
  const ids = Int32Array.from({ length: BATCH * SEQ }, (_, i) => 1 + ((i * 7919) % wrap));
  const labels = ids.map((id, i) => (i % SEQ < PROMPT ? -100 : id));
  const input = { batch: BATCH, seq: SEQ, inputIds: ids };
  const params = adapter.namedParameters();
  const forwardBackward = await timeSteps(label, stepCount, async () => {
    // Reading the loss waits for the device, so asynchronous backends are timed to completion.
    await tidyAsync(async () => {
      const { loss } = model.loss(input, labels);
      backward(loss);
      await loss.toFloat32();
    });
    for (const [, t] of params) {
      t.grad?.dispose();
      t.grad = null;
    }
  });
  let update: Timed | undefined;
  if (timeUpdate) {
    // The Trainer's step (train/trainer.ts): gradients kept and zeroed on the device.
    for (const [, t] of params)
      backend.kernels.fill({ x: gradSlot(t).grad.operand() }, { n: t.size, value: 0 });
    const optimizer = createTrainerOptimizer(
      params.map(([name, tensor]) => ({ name, tensor, weightDecay: 0 })),
      { lr: 1e-4 },
    );
    update = await timeSteps(`${label} trainer`, stepCount, async () => {
      await tidyAsync(async () => {
        const { loss } = model.loss(input, labels);
        await loss.toFloat32(); // the Trainer reads the loss before backward
        backward(loss);
      });
      await optimizer.clipGradients(1.0);
      optimizer.step(1e-4);
      optimizer.zeroGrad();
      await params[0]![1].toFloat32(); // waits for the update to finish
    });
    optimizer.dispose();
  }
  const deviceMemory = backend instanceof WebGpuBackend ? backend.deviceMemory : undefined;
  adapter.dispose();
  model.dispose();
  backend.dispose();
  return { ...forwardBackward, update, deviceMemory };
}

say(
  `${useDora ? 'DoRA' : 'LoRA'} r=8 all-linear (dropout ${loraDropout}), batch ${BATCH}x${SEQ} (${PROMPT} prompt positions masked), bf16 frozen weights`,
);
const cpu = (t: number) => () => createCpuBackend(cpuBackend, t);
let gpuInfo: Record<string, unknown> | undefined;
const webgpu = (gemm?: string) => async () => {
  const kernels = await WebGpuKernels.create({ store: fileTuneStore(), ...(gemm && { gemm }) });
  const { adapterInfo, shaderF16, subgroups, subgroupMatrixConfigs, limits } = kernels.context;
  gpuInfo = {
    ...adapterInfo,
    shaderF16,
    subgroups,
    subgroupMatrixConfigs,
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
  };
  progress(
    `webgpu adapter: ${JSON.stringify(gpuInfo)}, GEMM plan ${JSON.stringify(kernels.gemmPlan)}`,
  );
  return new WebGpuBackend(kernels);
};
const main =
  device === 'webgpu'
    ? await measure(webgpu(), 'webgpu', steps + 1, withUpdate)
    : await measure(cpu(threads), `${cpuBackend} ${threads} thread(s)`, steps + 1, withUpdate);
const oldKernels =
  device === 'webgpu' && !process.argv.includes('--no-old-kernels')
    ? await measure(webgpu('legacy'), 'webgpu old kernels', steps + 1, false)
    : undefined;
const mainPeakRss = peakRss();
const baselineThreads = device === 'webgpu' ? threads : 1;
const baseline = withBaseline
  ? await measure(
      cpu(baselineThreads),
      `${cpuBackend} ${baselineThreads} thread(s) (baseline)`,
      1,
      false,
    )
  : undefined;
const tokens = BATCH * SEQ;
const stepFlops = loraStepFlops(parseDecoderConfig(readModelConfig(dir)), {
  batch: BATCH,
  seq: SEQ,
  supervisedRows: BATCH * (SEQ - PROMPT),
  rank: 8,
});
/** On wasm: how close the step runs to the wasm SIMD multiply-add ceiling of its threads. */
const cpuLimit =
  device === 'cpu' && cpuBackend === 'wasm'
    ? await (async () => {
        const rt = await WasmRuntime.create({ threads: 1 });
        const perThread = fmaCeilingGflops(rt);
        rt.dispose();
        const ceiling = perThread * threads;
        const fastestStep = stepFlops.total / 1e9 / ceiling;
        return {
          fmaCeilingGflopsPerThread: perThread,
          achievedGflops: stepFlops.total / 1e9 / main.secondsPerStep,
          shareOfCeiling: fastestStep / main.secondsPerStep,
          tokensPerSecondAtCeiling: tokens / fastestStep,
        };
      })()
    : undefined;
const result = {
  arch: modelArg ? null : benchArch(),
  device,
  ...(device === 'cpu' && { backend: cpuBackend }),
  threads,
  model: modelArg ?? `${benchArch()}-random-bf16`,
  batch: BATCH,
  seq: SEQ,
  maskedPositions: PROMPT,
  loraDropout,
  useDora,
  secondsPerStep: main.secondsPerStep,
  tokensPerSecond: tokens / main.secondsPerStep,
  cpuSecondsPerStep: main.cpuSecondsPerStep,
  firstStepSeconds: main.firstStep,
  stepSeconds: main.stepSeconds,
  ...(main.update && {
    trainerSecondsPerStep: main.update.secondsPerStep,
    trainerTokensPerSecond: tokens / main.update.secondsPerStep,
    trainerFirstStepSeconds: main.update.firstStep,
    trainerStepSeconds: main.update.stepSeconds,
  }),
  ...(gpuInfo && { webgpuAdapter: gpuInfo }),
  ...(main.deviceMemory && { devicePeakHeldBytes: main.deviceMemory.peakHeldBytes }),
  ...(oldKernels && {
    oldKernelsSecondsPerStep: oldKernels.secondsPerStep,
    speedupVsOldKernels: oldKernels.secondsPerStep / main.secondsPerStep,
  }),
  baselineCpuThreads: baseline ? baselineThreads : null,
  baselineSecondsPerStep: baseline?.secondsPerStep ?? null,
  speedupVsBaseline: baseline ? baseline.secondsPerStep / main.secondsPerStep : null,
  peakRssBytes: mainPeakRss,
  gflopPerStep: Object.fromEntries(Object.entries(stepFlops).map(([k, v]) => [k, v / 1e9])),
  ...(cpuLimit && { cpuLimit }),
  reference:
    'HF Trainer + PEFT on PyTorch CPU, this machine type: ~57 tok/s f32, ~90 tok/s bf16 autocast, 5.1-5.7 GB (documented, not measured in this run)',
};
say(
  `${device === 'webgpu' ? 'webgpu' : `${cpuBackend}, ${threads} threads`}: ${result.secondsPerStep.toFixed(2)} s/step, ${result.tokensPerSecond.toFixed(1)} tokens/s (CPU ${result.cpuSecondsPerStep.toFixed(2)} s/step)`,
);
if (main.update) {
  say(
    `with the Trainer's update (clip + AdamW): ${main.update.secondsPerStep.toFixed(2)} s/step, ${(tokens / main.update.secondsPerStep).toFixed(1)} tokens/s`,
  );
}
if (oldKernels) {
  say(
    `webgpu old kernels (first GEMM kernel, same run): ${oldKernels.secondsPerStep.toFixed(2)} s/step -> new kernels x${result.speedupVsOldKernels!.toFixed(2)}`,
  );
}
if (main.deviceMemory) {
  say(
    `device memory held by the buffer pool at its peak: ${(main.deviceMemory.peakHeldBytes / 2 ** 30).toFixed(2)} GiB`,
  );
}
if (baseline) {
  say(
    `${cpuBackend} ${baselineThreads} thread(s) (baseline, same run): ${baseline.secondsPerStep.toFixed(2)} s/step -> speedup ${result.speedupVsBaseline!.toFixed(2)}x`,
  );
}
say(`peak RSS ${(result.peakRssBytes / 2 ** 30).toFixed(2)} GiB`);
const gflop = result.gflopPerStep;
say(
  `matrix products per step: ${gflop.total!.toFixed(0)} GFLOP (projections ${gflop.projections!.toFixed(0)}, ` +
    `LM head ${gflop.lmHead!.toFixed(0)}, LoRA ${gflop.lora!.toFixed(1)}, attention ${gflop.attention!.toFixed(1)})`,
);
if (cpuLimit) {
  say(
    `what limits it: the step ran at ${cpuLimit.achievedGflops.toFixed(1)} GFLOP/s, ` +
      `${(100 * cpuLimit.shareOfCeiling).toFixed(0)}% of ${threads} x ${cpuLimit.fmaCeilingGflopsPerThread.toFixed(1)} GFLOP/s, ` +
      'the measured wasm SIMD multiply-add ceiling of these threads; even at 100% it would reach ' +
      `${cpuLimit.tokensPerSecondAtCeiling.toFixed(1)} tokens/s`,
  );
}
say(`reference: ${result.reference}`);
emitJson(result);
process.exit(0);

/** The CPU backends side by side, one child process each; prints and emits all figures. */
function compareCpuBackends(): void {
  const runs = runPerBackend(cpuBackends, ['--no-baseline', '--progress']);
  const tokensPerSecond = (name: string) => Number(runs[name]!.tokensPerSecond);
  for (const [name, r] of Object.entries(runs)) {
    const steady = (r.stepSeconds as number[]).slice(1);
    const spread = steady.length
      ? ` (steps ${Math.min(...steady).toFixed(2)}–${Math.max(...steady).toFixed(2)} s)`
      : '';
    say(
      `${name}: ${Number(r.secondsPerStep).toFixed(2)} s/step${spread}, ${tokensPerSecond(name).toFixed(1)} tokens/s, ` +
        `CPU ${Number(r.cpuSecondsPerStep).toFixed(2)} s/step, peak RSS ${(Number(r.peakRssBytes) / 2 ** 30).toFixed(2)} GiB`,
    );
  }
  const ratio =
    runs.native && runs.wasm ? tokensPerSecond('native') / tokensPerSecond('wasm') : null;
  if (ratio !== null) say(`native / wasm (same run): ${ratio.toFixed(2)}x tokens/s`);
  emitJson({ threads, backends: runs, nativeOverWasm: ratio });
}
