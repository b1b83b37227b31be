/**
 * Greedy generation that reads logits asynchronously, as WebGPU requires (the CLI's decoder reads
 * them synchronously, which only the CPU backend allows): prefill the prompt into a KV cache, then
 * one token per step, awaiting each step's logits row.
 */
import { noGrad } from '../engine/tape.ts';
import { tidy } from '../engine/tensor.ts';
import type { Tokenizer } from '../io/hf-tokenizer.ts';
import type { PromptTemplate } from '../data/templates.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { KVCache } from '../models/kv-cache.ts';

/** Reply length. */
export interface GreedyOptions {
  maxNewTokens: number;
  /** Called with the reply so far after each token (for a live display). */
  onText?: (text: string) => void;
}

/** The greedy reply of `model` to a conversation. */
export async function greedyReply(
  model: DecoderModel,
  tokenizer: Tokenizer,
  template: PromptTemplate,
  question: string,
  opts: GreedyOptions,
): Promise<string> {
  const promptIds = template.encodePrompt([{ role: 'user', content: question }]);
  const cache = new KVCache(model.config, 1, promptIds.length + opts.maxNewTokens);
  const generated: number[] = [];
  let reply = '';
  try {
    let input = promptIds;
    while (generated.length < opts.maxNewTokens) {
      const next = await nextToken(model, input, cache);
      if (template.stopTokenIds.includes(next)) break;
      generated.push(next);
      reply = tokenizer.decode(generated, { skipSpecialTokens: true });
      const stopAt = firstStop(reply, template.stopStrings);
      if (stopAt >= 0) return reply.slice(0, stopAt);
      opts.onText?.(reply);
      input = [next];
    }
    return reply;
  } finally {
    cache.dispose();
  }
}

/** Feeds `ids` after what `cache` holds and returns the argmax of the last position's logits. */
async function nextToken(model: DecoderModel, ids: number[], cache: KVCache): Promise<number> {
  const logits = noGrad(() =>
    tidy(() => {
      const input = { batch: 1, seq: ids.length, inputIds: Int32Array.from(ids) };
      return model.logits(model.forwardHidden(input, cache), [ids.length - 1]);
    }),
  );
  try {
    return argmax(await logits.toFloat32());
  } finally {
    logits.dispose();
  }
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

function firstStop(text: string, stops: readonly string[]): number {
  const found = stops.map((s) => text.indexOf(s)).filter((at) => at >= 0);
  return found.length > 0 ? Math.min(...found) : -1;
}
