/**
 * Seeded, serializable pseudo-random numbers (xoshiro128**, seeded through splitmix32).
 * Training uses it for data shuffling and dropout masks; its whole state goes into checkpoints so
 * a resumed run draws exactly the numbers the uninterrupted run would have drawn.
 */
import { LoraforgeError } from './errors.ts';

/** Everything needed to continue a stream: the four xoshiro words and Box-Muller's spare. */
export interface RngState {
  s: [number, number, number, number];
  /** Second normal of the last Box-Muller pair, not yet handed out. */
  spareNormal: number | null;
}

const TWO_POW_32 = 4294967296;

/** Seed used when none is given (as Hugging Face's TrainingArguments: 42). */
export const DEFAULT_SEED = 42;

/**
 * Derives an independent seed for a sub-stream (e.g. one epoch of the data loader) from a base
 * seed, so each stream depends only on (seed, stream) and resuming needs no stored history.
 */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export class Rng {
  private s = new Uint32Array(4);
  private spareNormal: number | null = null;

  /** `seed` is taken modulo 2^32; equal seeds give equal streams. */
  constructor(seed: number) {
    if (!Number.isFinite(seed))
      throw new LoraforgeError(`rng seed must be a finite number, got ${seed}`);
    const next = splitmix32(Math.floor(seed) % TWO_POW_32);
    for (let i = 0; i < 4; i++) this.s[i] = next();
    // xoshiro's one forbidden state; splitmix32 cannot produce four zeros, but be explicit.
    if (this.s.every((w) => w === 0)) this.s[0] = 1;
  }

  static fromState(state: RngState): Rng {
    const rng = new Rng(0);
    rng.restore(state);
    return rng;
  }

  /** Next raw 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Normal(mean, std) by Box-Muller; pairs are generated together and the spare is kept. */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return mean + std * z;
    }
    // 1 - uniform() lies in (0, 1], so the log is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.spareNormal = radius * Math.sin(angle);
    return mean + std * radius * Math.cos(angle);
  }

  /** Uniform integer in [min, max] (both inclusive), without modulo bias. */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
      throw new LoraforgeError(`rng.int needs integers min <= max, got ${min}, ${max}`);
    }
    const span = max - min + 1;
    if (span > TWO_POW_32) return min + Math.floor(this.uniform() * span);
    // Reject the top partial block of 2^32 so every value is equally likely.
    const limit = TWO_POW_32 - (TWO_POW_32 % span);
    let x: number;
    do x = this.nextU32();
    while (x >= limit);
    return min + (x % span);
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  state(): RngState {
    return { s: [this.s[0], this.s[1], this.s[2], this.s[3]], spareNormal: this.spareNormal };
  }

  restore(state: RngState): void {
    const words = state?.s;
    if (
      !Array.isArray(words) ||
      words.length !== 4 ||
      !words.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32)
    ) {
      throw new LoraforgeError('invalid rng state: expected s = four unsigned 32-bit integers');
    }
    if (words.every((w) => w === 0))
      throw new LoraforgeError('invalid rng state: all-zero xoshiro state');
    this.s.set(words);
    this.spareNormal = typeof state.spareNormal === 'number' ? state.spareNormal : null;
  }
}
