import type { Conversation } from './conversation.ts';
import { IGNORE_INDEX, type PromptTemplate } from './prompt-template.ts';

/** A tokenized training example: inputIds and unshifted labels of equal length. */
export interface EncodedExample {
  inputIds: Int32Array;
  labels: Int32Array;
}

export interface EncodeOptions {
  /** Longest example in tokens; longer ones are cut at the end, like the tutorial's MAX_LENGTH. */
  cutoffLen: number;
  /** Learn the prompt tokens too, not only the assistant replies. */
  trainOnPrompt: boolean;
}

export interface EncodeStats {
  /** Examples kept. */
  examples: number;
  /** Examples dropped because nothing was left to learn after truncation. */
  dropped: number;
  /** Kept examples that were cut at cutoffLen. */
  truncated: number;
  /** Tokens of the kept examples. */
  tokens: number;
  /** Tokens the loss is computed on (see countTargets). */
  supervisedTokens: number;
}

export const DEFAULT_CUTOFF_LEN = 256;

/** Tokenizes conversations, truncates them at cutoffLen and drops those left with no target. */
export function encodeExamples(
  conversations: readonly Conversation[],
  template: PromptTemplate,
  opts: EncodeOptions,
): { examples: EncodedExample[]; stats: EncodeStats } {
  const examples: EncodedExample[] = [];
  const stats: EncodeStats = {
    examples: 0,
    dropped: 0,
    truncated: 0,
    tokens: 0,
    supervisedTokens: 0,
  };
  for (const conv of conversations) {
    const { inputIds, labels } = template.encodeConversation(conv, {
      trainOnPrompt: opts.trainOnPrompt,
    });
    const length = Math.min(inputIds.length, opts.cutoffLen);
    const example = {
      inputIds: Int32Array.from(inputIds.slice(0, length)),
      labels: Int32Array.from(labels.slice(0, length)),
    };
    const targets = countTargets(example.labels);
    if (targets === 0) {
      stats.dropped++;
      continue;
    }
    if (length < inputIds.length) stats.truncated++;
    stats.examples++;
    stats.tokens += length;
    stats.supervisedTokens += targets;
    examples.push(example);
  }
  return { examples, stats };
}

/**
 * Labels that contribute to the causal LM loss: the logits at t predict labels[t+1], so a label
 * at position 0 never does (nothing comes before it).
 */
export function countTargets(labels: ArrayLike<number>, from = 0, to = labels.length): number {
  let n = 0;
  for (let t = from + 1; t < to; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}
