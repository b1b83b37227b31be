/**
 * Next-token selection with transformers' logits processors, in their order: repetition penalty,
 * temperature, top-k, top-p; temperature 0 means greedy argmax.
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
  seed?: number;
}

export class Sampler {
  private readonly rng: Rng;

  constructor(private readonly opts: SamplingOptions = {}) {
    this.rng = new Rng(opts.seed ?? (Math.random() * 2 ** 31) >>> 0);
  }

  /** Picks the next token; `logits` may be modified. */
  sample(logits: Float32Array, previous: readonly number[]): number {
    const { temperature = 0, topK = 0, topP = 1, repetitionPenalty = 1 } = this.opts;
    if (repetitionPenalty !== 1) {
      for (const id of new Set(previous)) {
        const l = logits[id]!;
        logits[id] = l < 0 ? l * repetitionPenalty : l / repetitionPenalty;
      }
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
