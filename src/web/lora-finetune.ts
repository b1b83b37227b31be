/**
 * A small LoRA fine-tune that runs on WebGPU in a page: the model's fused loss, the tape's
 * backward pass, and the Trainer's device-side update (gradient clipping and AdamW kernels, a
 * cosine schedule with warmup), so parameters, gradients and moments stay on the device and the
 * host only awaits the gradient norm and the loss of each step. No checkpoints, evaluation or
 * gradient accumulation: train/trainer.ts has those but also reads and writes files.
 */
import { backward, gradSlot, noGrad } from '../engine/tape.ts';
import { getBackend, tidy, type Tensor } from '../engine/tensor.ts';
import type { Conversation } from '../data/conversation.ts';
import { encodeExamples } from '../data/examples.ts';
import { DataLoader, padIdOf } from '../data/loader.ts';
import type { PromptTemplate } from '../data/templates.ts';
import type { Tokenizer } from '../io/hf-tokenizer.ts';
import type { Batch } from '../data/batch.ts';
import type { DecoderModel, ModelInput } from '../models/decoder.ts';
import { LoraAdapter } from '../peft/adapter.ts';
import { makeLoraConfig } from '../peft/config.ts';
import { LrSchedule, type ScheduleName } from '../train/schedule.ts';
import { createTrainerOptimizer } from '../train/trainer-optimizer.ts';

/** The page's LoRA recipe. */
export interface FineTuneOptions {
  steps: number;
  batchSize: number;
  /** Peak learning rate. */
  learningRate: number;
  /** LoRA rank r (alpha is 2r, as in the demo). */
  rank: number;
  /** Tokens kept of each example, prompt included (the rest is cut off, as `cutoff_len` does). */
  cutoffLen: number;
  /** Learning-rate schedule; the warmup (5% of the steps) applies to all but `constant`. */
  schedule: ScheduleName;
  seed: number;
  /** Called after every step with its training loss. */
  onStep?: (step: number, loss: number) => void;
}

/**
 * The page's recipe, small enough for a software WebGPU adapter (about a minute on lavapipe):
 * 40 steps of 4 examples cut to 32 tokens, at a constant 5e-3. With the name-first identity
 * records (dataset-text.ts) the tiny model answers 你是谁？ with 我是 小李，由 小张 开发… for every
 * loader seed tried on the CPU backend (21 of 21); the demo's recipe (all 90 records, full length,
 * cosine at 2e-3) needs hundreds of steps, and 16 to 32 steps of this one get the name for only
 * some seeds. Trained on identity records alone, the tiny model forgets some arithmetic.
 */
export const DEFAULT_FINETUNE: Readonly<FineTuneOptions> = {
  steps: 40,
  batchSize: 4,
  learningRate: 5e-3,
  rank: 8,
  cutoffLen: 32,
  schedule: 'constant',
  seed: 42,
};
const WARMUP_RATIO = 0.05;
const MAX_GRAD_NORM = 1;

/** Losses and timing of a fine-tune in the page. */
export interface FineTuneResult {
  /** Attached to the model. */
  adapter: LoraAdapter;
  /** Training loss of each step (each its own batch, so they are noisy). */
  losses: number[];
  /**
   * The first batch's loss measured again after training: against losses[0] (the same batch
   * before any update) it shows learning without the noise of comparing different batches.
   */
  firstBatchLossAfter: number;
}

/** Trains a fresh LoRA on `conversations` and leaves it attached to `model`. */
export async function fineTuneLora(
  model: DecoderModel,
  tokenizer: Tokenizer,
  template: PromptTemplate,
  conversations: readonly Conversation[],
  opts: FineTuneOptions,
): Promise<FineTuneResult> {
  const { examples } = encodeExamples(conversations, template, {
    cutoffLen: opts.cutoffLen,
    trainOnPrompt: false,
  });
  const loader = new DataLoader(examples, {
    batchSize: opts.batchSize,
    padId: padIdOf(tokenizer),
    seed: opts.seed,
  });
  const config = makeLoraConfig({ r: opts.rank, loraAlpha: 2 * opts.rank, loraDropout: 0 });
  const adapter = LoraAdapter.create(model, config, opts.seed);
  adapter.attach(model);
  adapter.setTrainable(true);
  const backend = getBackend();
  const params = adapter.namedParameters().map(([name, tensor]) => {
    // The optimizer works on gradients that exist before the first backward pass (zeroed here).
    backend.kernels.fill(gradSlot(tensor).grad.operand(), tensor.size, 0);
    return { name, tensor, weightDecay: 0 };
  });
  const optimizer = createTrainerOptimizer(backend, params, {});
  const schedule = new LrSchedule({
    name: opts.schedule,
    lr: opts.learningRate,
    totalSteps: opts.steps,
    warmupRatio: WARMUP_RATIO,
  });
  const losses: number[] = [];
  let firstBatch: Batch | undefined;
  try {
    for (let step = 0; step < opts.steps; step++) {
      const batch = loader.next();
      firstBatch ??= batch;
      const loss = tidy(() => {
        const result = model.loss(modelInput(batch), batch.labels).loss;
        backward(result);
        return result;
      });
      await optimizer.clipGradients(MAX_GRAD_NORM);
      optimizer.step(schedule.lrAt(step));
      optimizer.zeroGrad();
      losses.push(await readScalar(loss));
      opts.onStep?.(step + 1, losses[step]!);
    }
  } finally {
    optimizer.dispose();
    adapter.setTrainable(false);
    for (const { tensor } of params) {
      tensor.grad?.dispose();
      tensor.grad = null;
    }
  }
  const after = firstBatch
    ? noGrad(() => tidy(() => model.loss(modelInput(firstBatch), firstBatch.labels).loss))
    : undefined;
  return { adapter, losses, firstBatchLossAfter: after ? await readScalar(after) : NaN };
}

function modelInput(batch: Batch): ModelInput {
  return {
    batch: batch.batchSize,
    seq: batch.seqLen,
    inputIds: batch.inputIds,
    attentionMask: batch.attentionMask,
    positionIds: batch.positionIds,
  };
}

/** The value of a one-element tensor, which is disposed. */
async function readScalar(t: Tensor): Promise<number> {
  try {
    return (await t.toFloat32())[0]!;
  } finally {
    t.dispose();
  }
}
