import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { Batch } from '../../src/data/batch.ts';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { makeTrainingArguments } from '../../src/train/arguments.ts';
import type { MetricsRecord } from '../../src/train/metrics.ts';
import { Trainer, type BatchSource } from '../../src/train/trainer.ts';
import { TINY, readGolden, relativeError, useCpuBackend } from '../helpers.ts';

const TRAIN = join(TINY, 'train');

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

let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(TINY);
});

export function goldenArgs(outputDir: string, extra = {}) {
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

test('10 LoRA steps reproduce the Hugging Face Trainer log and final adapter', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lf-train-'));
  const adapter = loadAdapter(join(TRAIN, 'adapter_init'), model);
  adapter.attach(model);
  const logs: MetricsRecord[] = [];
  const trainer = new Trainer({
    model,
    adapter,
    train: new FixedBatches(goldenBatches()),
    args: goldenArgs(out),
    progress: false,
    log: () => {},
    onLog: (r) => logs.push(r),
  });
  await trainer.train();
  const golden = JSON.parse(readFileSync(join(TRAIN, 'train_log.json'), 'utf8')).steps as {
    loss: number;
    grad_norm: number;
    lr_after_scheduler_step: number;
  }[];
  assert.equal(logs.length, 10);
  golden.forEach((g, i) => {
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
    assert.ok(rel(logs[i]!.loss!, g.loss) < 1e-4, `step ${i + 1} loss ${logs[i]!.loss} vs ${g.loss}`);
    assert.ok(rel(logs[i]!.grad_norm!, g.grad_norm) < 1e-4, `step ${i + 1} grad norm ${logs[i]!.grad_norm} vs ${g.grad_norm}`);
    assert.ok(Math.abs(logs[i]!.lr! - g.lr_after_scheduler_step) < 1e-12, `step ${i + 1} lr`);
  });
  const final = readGolden(join(TRAIN, 'adapter_final', 'adapter_model.safetensors'));
  const mine = readGolden(join(out, 'adapter_model.safetensors'));
  for (const name of final.names()) {
    const a = mine.f32(name).data;
    const b = final.f32(name).data;
    let maxAbs = 0;
    for (let i = 0; i < a.length; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
    assert.ok(maxAbs < 1e-4, `${name}: max abs ${maxAbs} (relative ${relativeError(a, b)})`);
  }
  adapter.dispose();
  rmSync(out, { recursive: true, force: true });
});
