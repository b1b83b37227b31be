/** The golden training run's data and arguments (shared/golden/qwen2-tiny/train). */
import { join } from 'node:path';
import type { Batch } from '../../src/data/batch.ts';
import { makeTrainingArguments, type TrainingArguments } from '../../src/train/arguments.ts';
import type { BatchSource } from '../../src/train/trainer.ts';
import { TINY, readGolden } from '../helpers.ts';

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

export function goldenBatches(): Batch[] {
  const g = readGolden(join(TRAIN, 'train_batches.safetensors'));
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

export function goldenArgs(outputDir: string, extra: Partial<TrainingArguments> = {}): TrainingArguments {
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

