/**
 * LoRA training throughput on a Qwen2-0.5B-shaped model: bf16 frozen weights, r = 8 on all seven
 * projections, batch 8 × 64 tokens with the first 32 positions of each row labelled -100 (the
 * Hugging Face + PEFT reference setup). Reports seconds per step, tokens/s and peak RSS, with the
 * same step on 1 thread measured in the same run as the baseline.
 *   npm run bench:train [-- --steps N --threads T --device cpu|webgpu --json]
 * With --device webgpu the same-run baseline is the CPU backend on T threads.
 */
import { CpuBackend } from '../src/engine/cpu/backend.ts';
import type { Backend } from '../src/engine/backend.ts';
import { WebGpuBackend } from '../src/engine/webgpu/backend.ts';
import { backward } from '../src/engine/tape.ts';
import { setBackend, tidyAsync } from '../src/engine/tensor.ts';
import { loadModel } from '../src/models/load.ts';
import { LoraAdapter } from '../src/peft/adapter.ts';
import { makeLoraConfig } from '../src/peft/config.ts';
import { argValue, emitJson, peakRss, printMachine, randomQwen05B, say } from './common.ts';

const BATCH = 8;
const SEQ = 64;
const PROMPT = 32;
const steps = argValue('--steps', 3);
const threads = argValue('--threads', 2);
const device = process.argv.includes('--device')
  ? process.argv[process.argv.indexOf('--device') + 1]!
  : 'cpu';

printMachine();
const dir = randomQwen05B();

async function measure(
  makeBackend: () => Promise<Backend>,
  label: string,
  stepCount: number,
): Promise<{ secondsPerStep: number; firstStep: number }> {
  const backend = await makeBackend();
  setBackend(backend);
  const model = loadModel(dir, { dtype: 'bf16' });
  const adapter = LoraAdapter.create(
    model,
    makeLoraConfig({ r: 8, loraAlpha: 16, loraDropout: 0, targetModules: 'all-linear' }),
    0,
  );
  adapter.attach(model);
  adapter.setTrainable(true);
  const ids = Int32Array.from({ length: BATCH * SEQ }, (_, i) => 1 + ((i * 7919) % 150000));
  const labels = ids.map((id, i) => (i % SEQ < PROMPT ? -100 : id));
  const times: number[] = [];
  for (let s = 0; s < stepCount; s++) {
    const start = performance.now();
    // Reading the loss waits for the device, so asynchronous backends are timed to completion.
    await tidyAsync(async () => {
      const { loss } = model.loss({ batch: BATCH, seq: SEQ, inputIds: ids }, labels);
      backward(loss);
      await loss.toFloat32();
    });
    for (const [, t] of adapter.namedParameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
    times.push((performance.now() - start) / 1000);
    say(`  ${label} step ${s + 1}: ${times.at(-1)!.toFixed(2)} s`);
  }
  adapter.dispose();
  model.dispose();
  backend.dispose();
  const steady = times.length > 1 ? times.slice(1) : times;
  return {
    secondsPerStep: steady.reduce((a, b) => a + b, 0) / steady.length,
    firstStep: times[0]!,
  };
}

say(
  `LoRA r=8 all-linear, batch ${BATCH}x${SEQ} (${PROMPT} prompt positions masked), bf16 frozen weights`,
);
const cpu = (t: number) => () => CpuBackend.create({ threads: t });
const main =
  device === 'webgpu'
    ? await measure(() => WebGpuBackend.create(), 'webgpu', steps + 1)
    : await measure(cpu(threads), `${threads} thread(s)`, steps + 1);
const mainPeakRss = peakRss();
const baselineThreads = device === 'webgpu' ? threads : 1;
const baseline = await measure(
  cpu(baselineThreads),
  `cpu ${baselineThreads} thread(s) (baseline)`,
  1,
);
const tokens = BATCH * SEQ;
const result = {
  device,
  threads,
  secondsPerStep: main.secondsPerStep,
  tokensPerSecond: tokens / main.secondsPerStep,
  baselineCpuThreads: baselineThreads,
  baselineSecondsPerStep: baseline.secondsPerStep,
  speedupVsBaseline: baseline.secondsPerStep / main.secondsPerStep,
  peakRssBytes: mainPeakRss,
  reference:
    'HF Trainer + PEFT on PyTorch CPU, this machine type: ~57 tok/s f32, ~90 tok/s bf16 autocast, 5.1-5.7 GB (documented, not measured in this run)',
};
say(
  `${device === 'webgpu' ? 'webgpu' : `${threads} threads`}: ${result.secondsPerStep.toFixed(2)} s/step, ${result.tokensPerSecond.toFixed(1)} tokens/s`,
);
say(
  `cpu ${baselineThreads} thread(s) (baseline, same run): ${baseline.secondsPerStep.toFixed(2)} s/step -> speedup ${result.speedupVsBaseline.toFixed(2)}x`,
);
say(`peak RSS ${(result.peakRssBytes / 2 ** 30).toFixed(2)} GiB`);
say(`reference: ${result.reference}`);
emitJson(result);
process.exit(0);
