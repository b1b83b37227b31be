/**
 * A small LoRA fine-tune that runs on WebGPU in a page: the model's fused loss, the tape's
 * backward pass and AdamW as the backend's adamwStep kernel, so parameters, gradients and moments
 * stay on the device and the host only awaits one number per step (the loss).
 */
import { backward } from '../engine/tape.ts';
import { Tensor, getBackend, tidy } from '../engine/tensor.ts';
import type { Conversation } from '../data/conversation.ts';
import { encodeExamples } from '../data/examples.ts';
import { DataLoader, padIdOf } from '../data/loader.ts';
import type { PromptTemplate } from '../data/templates.ts';
import type { Tokenizer } from '../io/hf-tokenizer.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { LoraAdapter } from '../peft/adapter.ts';
import { makeLoraConfig } from '../peft/config.ts';

export interface FineTuneOptions {
  steps: number;
  batchSize: number;
  learningRate: number;
  rank: number;
  seed: number;
  /** Called after every step with its training loss. */
  onStep?: (step: number, loss: number) => void;
}

export const DEFAULT_FINETUNE: FineTuneOptions = {
  steps: 12,
  batchSize: 8,
  // The demo's rate (examples/identity.yaml): a rank-8 LoRA on the tiny model learns fast.
  learningRate: 2e-3,
  rank: 8,
  seed: 42,
};

/** Trains a fresh LoRA on `conversations` and leaves it attached to `model`; returns it. */
export async function fineTuneLora(
  model: DecoderModel,
  tokenizer: Tokenizer,
  template: PromptTemplate,
  conversations: readonly Conversation[],
  opts: FineTuneOptions,
): Promise<LoraAdapter> {
  const { examples } = encodeExamples(conversations, template, {
    cutoffLen: 256,
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
  const optimizer = new DeviceAdamW(
    adapter.namedParameters().map(([, t]) => t),
    opts.learningRate,
  );
  try {
    for (let step = 1; step <= opts.steps; step++) {
      const batch = loader.next();
      const loss = tidy(() => {
        const input = {
          batch: batch.batchSize,
          seq: batch.seqLen,
          inputIds: batch.inputIds,
          attentionMask: batch.attentionMask,
          positionIds: batch.positionIds,
        };
        const result = model.loss(input, batch.labels).loss;
        backward(result);
        return result;
      });
      optimizer.step();
      const value = (await loss.toFloat32())[0]!;
      loss.dispose();
      opts.onStep?.(step, value);
    }
  } finally {
    optimizer.dispose();
    adapter.setTrainable(false);
  }
  return adapter;
}

/** torch.optim.AdamW (betas 0.9 / 0.999, eps 1e-8, no weight decay) with device-resident moments. */
class DeviceAdamW {
  private readonly moments: { m: Tensor; v: Tensor }[];
  private t = 0;

  constructor(
    private readonly params: readonly Tensor[],
    private readonly lr: number,
  ) {
    this.moments = params.map((p) => ({
      m: Tensor.zeros(p.shape).keep(),
      v: Tensor.zeros(p.shape).keep(),
    }));
  }

  /** Applies and then drops the gradients the last backward pass left on the parameters. */
  step(): void {
    this.t++;
    const [beta1, beta2] = [0.9, 0.999];
    const kernels = getBackend().kernels;
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      const { m, v } = this.moments[i]!;
      kernels.adamwStep(
        p.operand(),
        p.grad.operand(),
        m.operand(),
        v.operand(),
        p.size,
        this.lr,
        beta1,
        beta2,
        1e-8,
        0,
        1 - beta1 ** this.t,
        1 - beta2 ** this.t,
      );
      p.grad.dispose();
      p.grad = null;
    });
  }

  dispose(): void {
    for (const { m, v } of this.moments) {
      m.dispose();
      v.dispose();
    }
  }
}
