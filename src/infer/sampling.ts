/**
 * Next-token selection with transformers' logits processors, in their order: repetition penalty,
 * (OpenAI's presence / frequency penalties), temperature, top-k, top-p; temperature 0 means
 * greedy argmax.
 */
import { Rng } from '../util/rng.ts';

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
    let candidates = Array.from(logits.keys());
    candidates.sort((a, b) => logits[b]! - logits[a]!);
    if (topK > 0) candidates = candidates.slice(0, topK);
    const max = logits[candidates[0]!]!;
    let probs = candidates.map((id) => Math.exp((logits[id]! - max) / temperature));
    const total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
    if (topP < 1) {
      // Smallest prefix whose mass reaches topP (always at least one token).
      let mass = 0;
      let keep = 0;
      while (keep < probs.length && (keep === 0 || mass < topP)) mass += probs[keep++]!;
      candidates = candidates.slice(0, keep);
      probs = probs.slice(0, keep).map((p) => p / mass);
    }
    let u = this.rng.uniform();
    for (let i = 0; i < probs.length; i++) {
      u -= probs[i]!;
      if (u <= 0) return candidates[i]!;
    }
    return candidates.at(-1)!;
  }
}

export function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}
