/**
 * The golden training run's data, arguments and expected results (shared/golden/qwen2-tiny/train
 * by default; `pkg` picks another golden package of the same layout, e.g. qwen3-tiny).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Batch } from '../../src/data/batch.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { makeTrainingArguments, type TrainingArguments } from '../../src/train/arguments.ts';
import type { MetricsRecord } from '../../src/train/metrics.ts';
import { Trainer, type BatchSource } from '../../src/train/trainer.ts';
import { TINY, maxAbsDiff, readGolden } from '../helpers.ts';

export const TRAIN = join(TINY, 'train');

/** The 20 golden micro-batches, handed out in order. */
export class FixedBatches implements BatchSource {
  private index = 0;
  constructor(private readonly batches: Batch[]) {}
  get batchesPerEpoch(): number {
    return this.batches.length;
  }
  next(): Batch {
    return this.batches[this.index++ % this.batches.length]!;
  }
  state(): unknown {
    return { index: this.index };
  }
  restore(state: { index: number }): void {
    this.index = state.index;
  }
}

export function goldenBatches(pkg = TINY): Batch[] {
  const g = readGolden(join(pkg, 'train', 'train_batches.safetensors'));
  const ids = g.i32('input_ids');
  const mask = g.i32('attention_mask').data;
  const labels = g.i32('labels').data;
  const [count, rows, seq] = ids.shape as [number, number, number];
  return Array.from({ length: count }, (_, k) => {
    const slice = (a: Int32Array) => a.slice(k * rows * seq, (k + 1) * rows * seq);
    const positionIds = new Int32Array(rows * seq).map((_, i) => i % seq);
    return {
      batchSize: rows,
      seqLen: seq,
      inputIds: slice(ids.data),
      labels: slice(labels),
      attentionMask: slice(mask),
      positionIds,
      numTargets: 0,
    };
  });
}

export function goldenArgs(
  outputDir: string,
  extra: Partial<TrainingArguments> = {},
): TrainingArguments {
  return makeTrainingArguments({
    outputDir,
    maxSteps: 10,
    gradientAccumulationSteps: 2,
    learningRate: 5e-3,
    weightDecay: 0.01,
    maxGradNorm: 1,
    warmupSteps: 2,
    lrSchedulerType: 'cosine',
    loggingSteps: 1,
    ...extra,
  });
}

/**
 * Runs the golden 10 steps from adapter_init on the active backend (with `args` changed, and
 * stopping with a checkpoint after step `stopAt` if given); returns the logged records.
 */
export async function trainGolden(
  model: DecoderModel,
  outputDir: string,
  opts: { args?: Partial<TrainingArguments>; stopAt?: number; pkg?: string } = {},
): Promise<MetricsRecord[]> {
  const adapter = loadAdapter(join(opts.pkg ?? TINY, 'train', 'adapter_init'), model);
  adapter.attach(model);
  const logs: MetricsRecord[] = [];
  const trainer: Trainer = new Trainer({
    model,
    adapter,
    train: new FixedBatches(goldenBatches(opts.pkg)),
    args: goldenArgs(outputDir, opts.args),
    progress: false,
    log: () => {},
    onLog: (r) => {
      logs.push(r);
      if (r.step === opts.stopAt) trainer.requestStop();
    },
  });
  await trainer.train();
  adapter.dispose();
  return logs;
}

/**
 * Trains the golden run twice, straight and as 6 steps, a stop and a resume to 10 (checkpoints
 * every 3 steps); returns each adapter tensor's largest absolute difference between the two.
 */
export async function resumedVsStraight(
  model: DecoderModel,
): Promise<{ name: string; maxAbs: number }[]> {
  const straight = mkdtempSync(join(tmpdir(), 'lf-straight-'));
  const resumed = mkdtempSync(join(tmpdir(), 'lf-resumed-'));
  const checkpointEvery3 = { saveSteps: 3 };
  await trainGolden(model, straight, { args: checkpointEvery3 });
  await trainGolden(model, resumed, { args: checkpointEvery3, stopAt: 6 });
  assert.ok(existsSync(join(resumed, 'checkpoint-6')), 'the stop saved checkpoint-6');
  assert.ok(
    !existsSync(join(resumed, 'adapter_model.safetensors')),
    'no final adapter after a stop',
  );
  await trainGolden(model, resumed, { args: { ...checkpointEvery3, resumeFromCheckpoint: true } });
  const a = readGolden(join(straight, 'adapter_model.safetensors'));
  const b = readGolden(join(resumed, 'adapter_model.safetensors'));
  const diffs = a
    .names()
    .map((name) => ({ name, maxAbs: maxAbsDiff(a.f32(name).data, b.f32(name).data) }));
  rmSync(straight, { recursive: true, force: true });
  rmSync(resumed, { recursive: true, force: true });
  return diffs;
}

/** Hugging Face's log of the golden run, one entry per step. */
export function goldenSteps(pkg = TINY): {
  loss: number;
  grad_norm: number;
  lr_after_scheduler_step: number;
}[] {
  return JSON.parse(readFileSync(join(pkg, 'train', 'train_log.json'), 'utf8')).steps;
}

/** Largest absolute difference of each tensor of the adapter in `outputDir` from adapter_final. */
export function finalAdapterDiffs(
  outputDir: string,
  pkg = TINY,
): { name: string; maxAbs: number }[] {
  const final = readGolden(join(pkg, 'train', 'adapter_final', 'adapter_model.safetensors'));
  const mine = readGolden(join(outputDir, 'adapter_model.safetensors'));
  return final
    .names()
    .map((name) => ({ name, maxAbs: maxAbsDiff(mine.f32(name).data, final.f32(name).data) }));
}

/** |a − b| / |b|, for comparing logged scalars with the golden log. */
export function relDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
}
