/** Seed used when none is given (data split and loader order). */
export const DEFAULT_SEED = 42;

/**
 * Mulberry32: a 32-bit-state PRNG (Tommy Ettinger's public-domain generator). Chosen because its
 * whole state is one uint32, so a data loader can record it in a checkpoint as a plain number
 * and resume the exact same sequence.
 */
export class Mulberry32 {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** The full generator state; `new Mulberry32(state)` continues the same sequence. */
  get state(): number {
    return this.s;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * Derives an independent seed for a sub-stream (e.g. one epoch) from a base seed, so each
 * epoch's order depends only on (seed, epoch) and resuming needs no stored RNG history.
 */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Fisher–Yates shuffle of a copy of `items`. */
export function shuffled<T>(items: readonly T[], rng: Mulberry32): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
