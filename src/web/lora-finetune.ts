/**
 * The page's LoRA recipe on the library's Trainer (train/trainer.ts, the loop `loraforge train`
 * runs too): on WebGPU the Trainer keeps parameters, gradients and AdamW moments on the device,
 * and the host awaits only each step's gradient norm and loss. No checkpoints or files: the page
 * offers the adapter as downloads instead (adapter-download.ts).
 */
import type { Conversation } from '../data/conversation.ts';
import { encodeExamples } from '../data/examples.ts';
import { DataLoader, padIdOf } from '../data/loader.ts';
import type { PromptTemplate } from '../data/templates.ts';
import type { Tokenizer } from '../io/hf-tokenizer.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { LoraAdapter } from '../peft/adapter.ts';
import { makeLoraConfig } from '../peft/config.ts';
import type { ScheduleName } from '../train/schedule.ts';
import { Trainer } from '../train/trainer.ts';

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
  const loaderOptions = { batchSize: opts.batchSize, padId: padIdOf(tokenizer), seed: opts.seed };
  // The loader's order is a function of its seed: a twin hands out the same first batch.
  const firstBatch = new DataLoader(examples, loaderOptions).next();
  const config = makeLoraConfig({ r: opts.rank, loraAlpha: 2 * opts.rank, loraDropout: 0 });
  const adapter = LoraAdapter.create(model, config, opts.seed);
  adapter.attach(model);
  const losses: number[] = [];
  const trainer = new Trainer({
    model,
    adapter,
    train: new DataLoader(examples, loaderOptions),
    args: {
      maxSteps: opts.steps,
      learningRate: opts.learningRate,
      lrSchedulerType: opts.schedule,
      warmupRatio: 0.05,
      maxGradNorm: 1,
      seed: opts.seed,
    },
    callbacks: [
      {
        onStep: ({ globalStep, loss }) => {
          losses.push(loss);
          opts.onStep?.(globalStep, loss);
        },
      },
    ],
  });
  await trainer.train();
  return { adapter, losses, firstBatchLossAfter: await trainer.evaluate([firstBatch]) };
}
