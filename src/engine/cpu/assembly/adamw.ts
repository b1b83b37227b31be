// AdamW (src/engine/kernels/adamw.ts).
import { at, splat, madd } from './lib/simd';

@inline function adamwAt(
  p: usize, g: usize, m: usize, v: usize, wide: bool,
  decay: v128, beta1: v128, oneMinusBeta1: v128, beta2: v128, oneMinusBeta2: v128,
  stepSize: v128, bc2Sqrt: v128, eps: v128,
): void {
  // Separate multiplies and adds in PyTorch's order (no fused madd): the result matches the
  // reference bit for bit.
  const gv = wide ? v128.load(g) : v128.load32_splat(g);
  const mv = f32x4.add(f32x4.mul(wide ? v128.load(m) : v128.load32_splat(m), beta1), f32x4.mul(oneMinusBeta1, gv));
  const vv = f32x4.add(f32x4.mul(wide ? v128.load(v) : v128.load32_splat(v), beta2), f32x4.mul(f32x4.mul(oneMinusBeta2, gv), gv));
  const denominator = f32x4.add(f32x4.div(f32x4.sqrt(vv), bc2Sqrt), eps);
  const decayed = f32x4.mul(wide ? v128.load(p) : v128.load32_splat(p), decay);
  const pv = f32x4.sub(decayed, f32x4.div(f32x4.mul(stepSize, mv), denominator));
  if (wide) {
    v128.store(p, pv);
    v128.store(m, mv);
    v128.store(v, vv);
  } else {
    v128.store32_lane(p, pv, 0);
    v128.store32_lane(m, mv, 0);
    v128.store32_lane(v, vv, 0);
  }
}

/** PyTorch's AdamW step (src/engine/kernels/adamw.ts), every scalar computed by the host. */
export function adamwStep(
  p: usize, g: usize, m: usize, v: usize, n: i32,
  decay: f32, beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32,
  stepSize: f32, bc2Sqrt: f32, eps: f32,
  start: i32, end: i32,
): void {
  let i = start;
  for (; i + 4 <= end; i += 4) {
    adamwAt(at(p, i), at(g, i), at(m, i), at(v, i), true, splat(decay), splat(beta1), splat(oneMinusBeta1),
      splat(beta2), splat(oneMinusBeta2), splat(stepSize), splat(bc2Sqrt), splat(eps));
  }
  for (; i < end; i++) {
    adamwAt(at(p, i), at(g, i), at(m, i), at(v, i), false, splat(decay), splat(beta1), splat(oneMinusBeta1),
      splat(beta2), splat(oneMinusBeta2), splat(stepSize), splat(bc2Sqrt), splat(eps));
  }
}
