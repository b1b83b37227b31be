/**
 * Held-out loss and perplexity of a model on any dataset: the causal-LM loss over the tokens a
 * training run would learn (the assistant replies under the training template), averaged per
 * token over the whole set, so perplexity = exp(loss) is the usual per-token figure.
 */
import type { EncodedExample } from '../data/examples.ts';
import { noGrad } from '../engine/tape.ts';
import { tidy } from '../engine/tensor.ts';
import type { DecoderModel } from '../models/decoder.ts';

export interface HeldOutLoss {
  /** Mean cross-entropy per target token (nats). */
  loss: number;
  perplexity: number;
  examples: number;
  /** Target tokens the mean is over. */
  tokens: number;
}

/** One example at a time: no padding, so each example's loss is exactly its own. */
export async function heldOutLoss(
  model: DecoderModel,
  examples: readonly EncodedExample[],
  onExample?: (done: number, total: number) => void,
): Promise<HeldOutLoss> {
  let total = 0;
  let tokens = 0;
  for (const [i, example] of examples.entries()) {
    const input = { batch: 1, seq: example.inputIds.length, inputIds: example.inputIds };
    const { loss, targets } = noGrad(() => tidy(() => model.loss(input, example.labels)));
    const value = (await loss.toFloat32())[0]!;
    loss.dispose();
    if (targets > 0) {
      total += value * targets;
      tokens += targets;
    }
    onExample?.(i + 1, examples.length);
  }
  const loss = tokens ? total / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), examples: examples.length, tokens };
}
