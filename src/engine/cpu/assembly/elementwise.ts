// The gate activations of the gated MLP (src/engine/kernels/elementwise.ts). Each formula is written
// once on vectors; the scalar tail runs it on a splatted element and stores lane 0. Work items: elements.
import { sigmoidv } from './lib/math';
import { at, splat, madd } from './lib/simd';

// Element-wise kernels. Each formula is written once on vectors; the scalar tail runs it on a
// splatted element and stores lane 0. Work items: elements.

// Gate activations of the gated MLP, down(act(gate) · up): SiLU (Llama, Qwen) and GELU-tanh
// (Gemma). GELU-tanh is written with the sigmoid: 0.5·x·(1 + tanh(u)) = x·σ(2u),
// u = √(2/π)·(x + 0.044715·x³).
const ACT_SILU: i32 = 0;
const ACT_GELU_TANH: i32 = 1;
const GELU_K: f32 = 0.7978845608028654; // √(2/π)
const GELU_C: f32 = 0.044715;

/** σ(2u) of GELU-tanh at x. */
@inline function geluSigmoidv(x: v128): v128 {
  const u = f32x4.mul(splat(GELU_K), madd(f32x4.mul(splat(GELU_C), x), f32x4.mul(x, x), x));
  return sigmoidv(f32x4.add(u, u));
}

/** act(g). */
@inline function activationv(g: v128, act: i32): v128 {
  return f32x4.mul(g, act == ACT_GELU_TANH ? geluSigmoidv(g) : sigmoidv(g));
}

/** act'(g). */
@inline function activationGradv(g: v128, act: i32): v128 {
  if (act == ACT_GELU_TANH) {
    // d/dx x·σ(2u) = s + x·s·(1 − s)·2u', u' = √(2/π)·(1 + 3·0.044715·x²)
    const s = geluSigmoidv(g);
    const du2 = f32x4.mul(splat(2 * GELU_K), madd(splat(3 * GELU_C), f32x4.mul(g, g), splat(1)));
    return madd(f32x4.mul(f32x4.mul(g, s), f32x4.sub(splat(1), s)), du2, s);
  }
  // silu'(g) = s * (1 + g * (1 - s))
  const s = sigmoidv(g);
  return f32x4.mul(s, madd(g, f32x4.sub(splat(1), s), splat(1)));
}

@inline function gatedForwardOf(gate: usize, up: usize, out: usize, act: i32, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) {
    v128.store(at(out, i), f32x4.mul(activationv(v128.load(at(gate, i)), act), v128.load(at(up, i))));
  }
  for (; i < end; i++) {
    const g = v128.load32_splat(at(gate, i));
    v128.store32_lane(at(out, i), f32x4.mul(activationv(g, act), v128.load32_splat(at(up, i))), 0);
  }
}

@inline function gatedBackwardAt(
  gate: usize, up: usize, dout: usize, dgate: usize, dup: usize, act: i32, wide: bool,
): void {
  const g = wide ? v128.load(gate) : v128.load32_splat(gate);
  const u = wide ? v128.load(up) : v128.load32_splat(up);
  const d = wide ? v128.load(dout) : v128.load32_splat(dout);
  const dg = f32x4.mul(f32x4.mul(d, u), activationGradv(g, act));
  const du = f32x4.mul(d, activationv(g, act));
  if (wide) {
    v128.store(dgate, dg);
    v128.store(dup, du);
  } else {
    v128.store32_lane(dgate, dg, 0);
    v128.store32_lane(dup, du, 0);
  }
}

@inline function gatedBackwardOf(
  gate: usize, up: usize, dout: usize, dgate: usize, dup: usize, act: i32, start: i32, end: i32,
): void {
  let i = start;
  for (; i + 4 <= end; i += 4) gatedBackwardAt(at(gate, i), at(up, i), at(dout, i), at(dgate, i), at(dup, i), act, true);
  for (; i < end; i++) gatedBackwardAt(at(gate, i), at(up, i), at(dout, i), at(dgate, i), at(dup, i), act, false);
}

/** out = act(gate) * up; activation 0 = silu, 1 = gelu_tanh (the spec's order). */
export function gatedForward(gate: usize, up: usize, out: usize, n: i32, activation: i32, start: i32, end: i32): void {
  // A constant activation per call site, so each inlined loop is specialised.
  if (activation == ACT_SILU) gatedForwardOf(gate, up, out, ACT_SILU, start, end);
  else gatedForwardOf(gate, up, out, ACT_GELU_TANH, start, end);
}

/** dgate = dout * up * act'(gate), dup = dout * act(gate); dgate / dup may be gate / up. */
export function gatedBackward(
  gate: usize, up: usize, dout: usize, dgate: usize, dup: usize, n: i32, activation: i32, start: i32, end: i32,
): void {
  if (activation == ACT_SILU) gatedBackwardOf(gate, up, dout, dgate, dup, ACT_SILU, start, end);
  else gatedBackwardOf(gate, up, dout, dgate, dup, ACT_GELU_TANH, start, end);
}
