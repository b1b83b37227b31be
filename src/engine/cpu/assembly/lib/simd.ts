// SIMD helpers shared by the kernel files (a library folder: build-wasm.mjs compiles only the
// files directly in assembly/ as entries, so nothing exported here becomes a wasm export).
//
// Every kernel file follows the rules that let each worker instantiate the module over the one
// shared memory: nothing allocates and nothing lives in memory (no data segments, no mutable
// globals, no top-level code), all buffers are byte-offset pointers (usize) to f32 data unless
// named otherwise (0 = absent), and parallel kernels take a trailing work range [start, end)
// over their outermost index. A kernel's arguments are its spec's buffers, then its params
// (src/engine/kernels/), then that range.

@inline export function at(base: usize, index: i32): usize {
  return base + (<usize>index << 2);
}

@inline export function splat(x: f32): v128 {
  return f32x4.splat(x);
}

/** a * b + c; fused (and slightly more accurate) in the relaxed-SIMD build. */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

@inline export function lanes(a: f32, b: f32, c: f32, d: f32): v128 {
  return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(splat(a), 1, b), 2, c), 3, d);
}

@inline export function hsum(a: v128): f32 {
  const pairs = f32x4.add(a, i32x4.shuffle(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(pairs, 0) + f32x4.extract_lane(pairs, 1);
}

@inline export function hmax(a: v128): f32 {
  const pairs = f32x4.pmax(a, i32x4.shuffle(a, a, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(pairs, 0), f32x4.extract_lane(pairs, 1));
}

/** [sum(a), sum(b), sum(c), sum(d)]: four horizontal sums in one transpose-and-add. */
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(i32x4.shuffle(a, b, 0, 4, 2, 6), i32x4.shuffle(a, b, 1, 5, 3, 7));
  const cd = f32x4.add(i32x4.shuffle(c, d, 0, 4, 2, 6), i32x4.shuffle(c, d, 1, 5, 3, 7));
  return f32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

