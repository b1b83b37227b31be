/**
 * A model above wasm32's 4 GiB on the native CPU backend: a random Qwen2.5-3B-shaped bf16 folder
 * (~6.2 GB, written by scripts/make-random-model.ts into a temporary folder that is deleted at
 * the end) is loaded, generates a few tokens, and trains LoRA (r 8, all-linear) for 2 steps with
 * the Trainer's update (clip + AdamW). Reports load time, prefill / decode / training tokens/s and
 * peak RSS.
 *   npm run bench:big [-- --threads T --prompt N --new M --seq S --keep DIR --json]
 * --keep DIR writes (or reuses) the model in DIR and leaves it there.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeBackend } from '../src/engine/native/backend.ts';
import { backward, gradSlot } from '../src/engine/tape.ts';
import { setBackend, tidyAsync } from '../src/engine/tensor.ts';
import { SequenceDecoder } from '../src/infer/sequences.ts';
import { loadModel } from '../src/models/load.ts';
import { LoraAdapter } from '../src/peft/adapter.ts';
import { makeLoraConfig } from '../src/peft/config.ts';
import { createTrainerOptimizer } from '../src/train/trainer-optimizer.ts';
import { argValue, emitJson, peakRss, printMachine, say, writeRandomBenchModel } from './common.ts';

const ARCH = 'qwen2.5-3b';
/** The folder's size with some room to spare. */
const NEEDED_DISK_BYTES = 7.5e9;
const threads = argValue('--threads', 2);
const promptLength = argValue('--prompt', 16);
const newTokens = argValue('--new', 4);
const seq = argValue('--seq', 32);
const keepIndex = process.argv.indexOf('--keep');
const kept = keepIndex >= 0 ? process.argv[keepIndex + 1]! : undefined;

printMachine();
const backend = NativeBackend.create({ threads });
setBackend(backend);
say(`backend: ${backend.describe()}`);

const dir = kept ?? join(mkdtempSync(join(tmpdir(), 'lf-big-')), ARCH);
let writeSeconds: number | null = null;
try {
  if (!existsSync(join(dir, 'model.safetensors'))) {
    const { bavail, bsize } = statfsSync(tmpdir());
    if (bavail * bsize < NEEDED_DISK_BYTES) {
      throw new Error(
        `bench:big needs ${(NEEDED_DISK_BYTES / 1e9).toFixed(1)} GB free in ${tmpdir()}`,
      );
    }
    say(`writing ${dir} (${ARCH} shape, random bf16 weights)...`);
    const start = performance.now();
    writeRandomBenchModel(ARCH, dir);
    writeSeconds = (performance.now() - start) / 1000;
  }
  const fileBytes = Number(execFileSync('stat', ['-c', '%s', join(dir, 'model.safetensors')]));
  say(`model.safetensors: ${(fileBytes / 2 ** 30).toFixed(2)} GiB`);

  let start = performance.now();
  const model = loadModel(dir, { dtype: 'bf16' });
  const loadSeconds = (performance.now() - start) / 1000;
  const loadPeakRss = peakRss();
  say(`load: ${loadSeconds.toFixed(1)} s, peak RSS ${(loadPeakRss / 2 ** 30).toFixed(2)} GiB`);

  const prompt = Array.from({ length: promptLength }, (_, i) => 1 + ((i * 7919) % 150000));
  const decoder = new SequenceDecoder(model, { maxContext: promptLength + newTokens + 1 });
  const sequence = decoder.start(prompt);
  start = performance.now();
  await decoder.step([sequence]); // prefill + first token
  const prefillSeconds = (performance.now() - start) / 1000;
  start = performance.now();
  for (let i = 1; i < newTokens; i++) await decoder.step([sequence]);
  const decodeSeconds = (performance.now() - start) / 1000;
  decoder.release(sequence);
  say(
    `generate: prefill ${(promptLength / prefillSeconds).toFixed(1)} tokens/s (${promptLength} tokens), decode ${((newTokens - 1) / decodeSeconds).toFixed(2)} tokens/s`,
  );

  const adapter = LoraAdapter.create(
    model,
    makeLoraConfig({ r: 8, loraAlpha: 16, targetModules: 'all-linear' }),
    0,
  );
  adapter.attach(model);
  adapter.setTrainable(true);
  const params = adapter.namedParameters();
  for (const [, t] of params)
    backend.kernels.fill({ x: gradSlot(t).grad.operand() }, { n: t.size, value: 0 });
  const optimizer = createTrainerOptimizer(
    params.map(([name, tensor]) => ({ name, tensor, weightDecay: 0 })),
    { lr: 1e-4 },
  );
  const ids = Int32Array.from({ length: seq }, (_, i) => 1 + ((i * 7919) % 150000));
  const labels = ids.map((id, i) => (i < seq / 2 ? -100 : id));
  const stepSeconds: number[] = [];
  const losses: number[] = [];
  for (let step = 0; step < 2; step++) {
    start = performance.now();
    await tidyAsync(async () => {
      const { loss } = model.loss({ batch: 1, seq, inputIds: ids }, labels);
      losses.push((await loss.toFloat32())[0]!);
      backward(loss);
    });
    await optimizer.clipGradients(1.0);
    optimizer.step(1e-4);
    optimizer.zeroGrad();
    stepSeconds.push((performance.now() - start) / 1000);
    say(
      `train step ${step + 1}: ${stepSeconds.at(-1)!.toFixed(1)} s, loss ${losses.at(-1)!.toFixed(3)}`,
    );
  }
  optimizer.dispose();
  adapter.dispose();
  model.dispose();

  const result = {
    arch: ARCH,
    describe: backend.describe(),
    threads,
    modelFileBytes: fileBytes,
    writeSeconds,
    loadSeconds,
    loadPeakRssBytes: loadPeakRss,
    promptTokens: promptLength,
    prefillTokensPerSecond: promptLength / prefillSeconds,
    decodeTokensPerSecond: (newTokens - 1) / decodeSeconds,
    trainSeq: seq,
    trainStepSeconds: stepSeconds,
    trainTokensPerSecond: seq / stepSeconds.at(-1)!,
    trainLosses: losses,
    peakRssBytes: peakRss(),
  };
  say(`peak RSS ${(result.peakRssBytes / 2 ** 30).toFixed(2)} GiB`);
  emitJson(result);
} finally {
  if (!kept) rmSync(join(dir, '..'), { recursive: true, force: true });
  backend.dispose();
}
process.exit(0);
