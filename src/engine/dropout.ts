/**
 * LoRA dropout's mask, defined by a seed instead of stored: element i is dropped when a
 * counter-based hash of (seed, i) (murmur3's finalizer of seed·φ + i) falls below p·2^32. Any
 * thread or GPU invocation draws element i's decision without shared state, and the backward pass
 * redraws the forward's mask, so a training step keeps no mask tensors. The CPU and WebGPU kernels
 * implement the same hash; the `dropout` spec's reference (kernels/vector-ops.ts) is the float64
 * one.
 */

export function dropoutHash(seed: number, i: number): number {
  let h = (Math.imul(seed, 0x9e3779b1) + i) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Elements whose hash is below this are dropped: p of the 2^32 hash values. */
export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.floor(p * 2 ** 32));
}

/** The factor kept elements are scaled by, 1 / (1 - p), as an f32. */
export function dropoutKeepScale(p: number): number {
  return Math.fround(1 / (1 - p));
}

/** Dropout of one call: probability and the seed its mask is drawn from. */
export interface DropoutSpec {
  p: number;
  seed: number;
}
