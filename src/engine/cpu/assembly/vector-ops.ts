// Flat kernels (src/engine/kernels/vector-ops.ts). Work items: elements.
import { at, splat } from './lib/simd';

/** out = a + b. */
/**
 * LoRA dropout (the spec in src/engine/kernels/vector-ops.ts): out = x * keep, or 0 where the
 * murmur3 finalizer of seed·φ + i is below `threshold` (unsigned); four elements at a time.
 * out may be x.
 */
export function dropoutApply(
  x: usize, out: usize, n: i32, threshold: u32, keep: f32, seed: u32, start: i32, end: i32,
): void {
  const base = seed * 0x9e3779b1;
  const keepV = f32x4.splat(keep);
  const thresholdV = i32x4.splat(threshold);
  let index = i32x4.add(i32x4.splat(base + <u32>start), i32x4(0, 1, 2, 3));
  let i = start;
  for (; i + 4 <= end; i += 4) {
    let h = index;
    h = i32x4.mul(v128.xor(h, i32x4.shr_u(h, 16)), i32x4.splat(0x85ebca6b));
    h = i32x4.mul(v128.xor(h, i32x4.shr_u(h, 13)), i32x4.splat(0xc2b2ae35));
    h = v128.xor(h, i32x4.shr_u(h, 16));
    const dropped = i32x4.lt_u(h, thresholdV);
    v128.store(at(out, i), v128.andnot(f32x4.mul(v128.load(at(x, i)), keepV), dropped));
    index = i32x4.add(index, i32x4.splat(4));
  }
  for (; i < end; i++) {
    let h = base + <u32>i;
    h = (h ^ (h >>> 16)) * 0x85ebca6b;
    h = (h ^ (h >>> 13)) * 0xc2b2ae35;
    h ^= h >>> 16;
    store<f32>(at(out, i), h < threshold ? 0 : load<f32>(at(x, i)) * keep);
  }
}

export function add(a: usize, b: usize, out: usize, n: i32, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) v128.store(at(out, i), f32x4.add(v128.load(at(a, i)), v128.load(at(b, i))));
  for (; i < end; i++) store<f32>(at(out, i), load<f32>(at(a, i)) + load<f32>(at(b, i)));
}
