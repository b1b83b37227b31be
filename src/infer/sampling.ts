/**
 * Next-token selection with transformers' logits processors, in their order: repetition penalty,
 * (OpenAI's presence / frequency penalties), temperature, top-k, top-p; temperature 0 means
 * greedy argmax.
 */
import { Rng } from '../util/rng.ts';
import { selectHeaviest, selectNucleus } from './heaviest-tokens.ts';

/** How the next token is picked (temperature 0 = greedy). */
export interface SamplingOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Nucleus mass in (0, 1] (1 = off). */
  topP?: number;
  /** > 1 discourages tokens already in the sequence (CTRL-style, as transformers does). */
  repetitionPenalty?: number;
  /** OpenAI's: subtracted once from every token already generated (not the prompt). */
  presencePenalty?: number;
  /** OpenAI's: subtracted per occurrence of a token already generated. */
  frequencyPenalty?: number;
  seed?: number;
}

type RangedField = Exclude<keyof SamplingOptions, 'seed'>;

interface Range {
  min: number;
  max: number;
  /** The minimum itself is not allowed (top-p 0 would keep no token). */
  aboveMin?: boolean;
  integer?: boolean;
}

/** Valid values, shared by the CLI flags and the server's request fields (OpenAI's ranges). */
export const SAMPLING_RANGES: Record<RangedField, Range> = {
  temperature: { min: 0, max: 2 },
  topP: { min: 0, max: 1, aboveMin: true },
  topK: { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true },
  repetitionPenalty: { min: 0, max: 2, aboveMin: true },
  presencePenalty: { min: -2, max: 2 },
  frequencyPenalty: { min: -2, max: 2 },
};

/** What a value of `field` must be, e.g. "a number in (0, 1]" or "a whole number >= 0". */
export function describeRange(field: RangedField): string {
  const { min, max, aboveMin, integer } = SAMPLING_RANGES[field];
  if (integer) return `a whole number >= ${min}`;
  return `a number in ${aboveMin ? '(' : '['}${min}, ${max}]`;
}

/** Whether `value` is valid for `field`. */
export function inSamplingRange(field: RangedField, value: number): boolean {
  const { min, max, aboveMin, integer } = SAMPLING_RANGES[field];
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) return false;
  return (aboveMin ? value > min : value >= min) && value <= max;
}

export class Sampler {
  private readonly rng: Rng;
  private ids: Int32Array | undefined;

  constructor(private readonly opts: SamplingOptions = {}) {
    this.rng = new Rng(opts.seed ?? (Math.random() * 2 ** 31) >>> 0);
  }

  /**
   * Picks the next token; `logits` may be modified. `previous` is the whole sequence so far, of
   * which the first `promptLength` tokens are the prompt (repetition penalty counts them, as
   * transformers does; presence and frequency penalties only count generated tokens, as OpenAI's).
   */
  sample(logits: Float32Array, previous: readonly number[], promptLength = 0): number {
    const { temperature = 0, topK = 0, topP = 1, repetitionPenalty = 1 } = this.opts;
    const { presencePenalty = 0, frequencyPenalty = 0 } = this.opts;
    if (repetitionPenalty !== 1) {
      for (const id of new Set(previous)) {
        const l = logits[id]!;
        logits[id] = l < 0 ? l * repetitionPenalty : l / repetitionPenalty;
      }
    }
    if (presencePenalty !== 0 || frequencyPenalty !== 0) {
      const counts = new Map<number, number>();
      for (let i = promptLength; i < previous.length; i++)
        counts.set(previous[i]!, (counts.get(previous[i]!) ?? 0) + 1);
      for (const [id, count] of counts)
        logits[id] = logits[id]! - presencePenalty - frequencyPenalty * count;
    }
    if (temperature <= 0) return argmax(logits);
    const ids = this.tokenIds(logits.length);
    const { count, total } = keptTokens(logits, { temperature, topK, topP }, ids);
    let u = this.rng.uniform() * total;
    for (let i = 0; i < count; i++) {
      u -= logits[ids[i]!]!;
      if (u <= 0) return ids[i]!;
    }
    return ids[count - 1]!;
  }

  /** 0, 1, ..., vocab - 1 in a buffer kept between tokens (the selections reorder it). */
  private tokenIds(vocab: number): Int32Array {
    if (this.ids?.length !== vocab) this.ids = new Int32Array(vocab);
    for (let i = 0; i < vocab; i++) this.ids[i] = i;
    return this.ids;
  }
}

/**
 * The tokens sampling may pick after temperature, top-k and top-p (transformers' order): on
 * return ids[0, count) are the kept tokens, in no particular order, and `logits[id]` holds each
 * one's weight, exp((logit - max) / temperature); `total` is the kept weights' sum. `ids` must
 * hold every token id (0 .. vocab - 1) in any order.
 */
export function keptTokens(
  logits: Float32Array,
  opts: { temperature: number; topK: number; topP: number },
  ids: Int32Array,
): { count: number; total: number } {
  let count = logits.length;
  if (opts.topK > 0 && opts.topK < count) {
    selectHeaviest(ids, count, logits, opts.topK);
    count = opts.topK;
  }
  let max = -Infinity;
  for (let i = 0; i < count; i++) max = Math.max(max, logits[ids[i]!]!);
  let total = 0;
  for (let i = 0; i < count; i++) {
    const id = ids[i]!;
    const weight = Math.exp((logits[id]! - max) / opts.temperature);
    logits[id] = weight;
    total += weight;
  }
  if (opts.topP < 1) {
    count = selectNucleus(ids, count, logits, opts.topP * total);
    total = 0;
    for (let i = 0; i < count; i++) total += logits[ids[i]!]!;
  }
  return { count, total };
}

export function argmax(values: Float32Array): number {
  let best = 0;
  let bestValue = values[0]!;
  for (let i = 1; i < values.length; i++) {
    if (values[i]! > bestValue) {
      best = i;
      bestValue = values[i]!;
    }
  }
  return best;
}
