// Rotate-half RoPE (src/engine/kernels/rope.ts).
import { sinCos } from './lib/math';
import { at, splat, lanes } from './lib/simd';

/** [sin, cos] (f64x2) of the f32 angle pos * invFreq, as float32 torch computes it, widened. */
@inline function ropeSinCos(pos: f32, invFreq: f32): v128 {
  return sinCos(<f64>(pos * invFreq));
}

@inline function sinLane(pair: v128): f32 {
  return <f32>f64x2.extract_lane(pair, 0);
}

@inline function cosLane(pair: v128): f32 {
  return <f32>f64x2.extract_lane(pair, 1);
}

/**
 * Rotates pairs (j.., j+half..) of every head of one row: four pairs wide, or the single pair j
 * in lane 0 when not `wide`. `half` is half the rotated part of a head (D/2 unless partial).
 */
@inline function rotateHeads(
  xRow: usize, oRow: usize, heads: i32, D: i32, half: i32, j: i32, cosv: v128, sinv: v128,
  wide: bool,
): void {
  for (let h = 0; h < heads; h++) {
    const first = at(xRow, h * D + j);
    const second = at(xRow, h * D + j + half);
    const x1 = wide ? v128.load(first) : v128.load32_splat(first);
    const x2 = wide ? v128.load(second) : v128.load32_splat(second);
    const o1 = f32x4.sub(f32x4.mul(x1, cosv), f32x4.mul(x2, sinv));
    const o2 = f32x4.add(f32x4.mul(x2, cosv), f32x4.mul(x1, sinv));
    if (wide) {
      v128.store(at(oRow, h * D + j), o1);
      v128.store(at(oRow, h * D + j + half), o2);
    } else {
      v128.store32_lane(at(oRow, h * D + j), o1, 0);
      v128.store32_lane(at(oRow, h * D + j + half), o2, 0);
    }
  }
}

/**
 * Rotate-half RoPE of x [B,T,heads,D] at positions i32 [B,T]; `inverse` rotates by -angle (the
 * backward). out may be x. Only the first `rotaryDim` values of each head turn (pairs j, j +
 * rotaryDim/2: partial rotary, Phi-3); the rest are copied. Pair j turns by position * invFreq[j]
 * (f32 table [rotaryDim/2], the model's possibly scaled frequencies, models/rope-frequencies.ts),
 * with cos and sin multiplied by `scale` (LongRoPE's attention factor; 1 otherwise) in f32.
 * Work items: b * T + t. Pairs are the outer loop so each frequency is read once per call.
 */
export function ropeApply(
  x: usize, out: usize, positions: usize, invFreq: usize, B: i32, T: i32, heads: i32, D: i32,
  inverse: i32, rotaryDim: i32, scale: f32, start: i32, end: i32,
): void {
  const half = rotaryDim >> 1;
  const cosScale = splat(scale);
  const sinScale = splat(inverse ? -scale : scale);
  let j = 0;
  for (; j + 4 <= half; j += 4) {
    const f0 = load<f32>(at(invFreq, j));
    const f1 = load<f32>(at(invFreq, j + 1));
    const f2 = load<f32>(at(invFreq, j + 2));
    const f3 = load<f32>(at(invFreq, j + 3));
    for (let row = start; row < end; row++) {
      const pos = <f32>load<i32>(at(positions, row));
      const a0 = ropeSinCos(pos, f0);
      const a1 = ropeSinCos(pos, f1);
      const a2 = ropeSinCos(pos, f2);
      const a3 = ropeSinCos(pos, f3);
      const cosv = f32x4.mul(cosScale, lanes(cosLane(a0), cosLane(a1), cosLane(a2), cosLane(a3)));
      const sinv = f32x4.mul(sinScale, lanes(sinLane(a0), sinLane(a1), sinLane(a2), sinLane(a3)));
      rotateHeads(at(x, row * heads * D), at(out, row * heads * D), heads, D, half, j, cosv, sinv, true);
    }
  }
  for (; j < half; j++) {
    const freq = load<f32>(at(invFreq, j));
    for (let row = start; row < end; row++) {
      const angle = ropeSinCos(<f32>load<i32>(at(positions, row)), freq);
      const cosv = f32x4.mul(cosScale, splat(cosLane(angle)));
      const sinv = f32x4.mul(sinScale, splat(sinLane(angle)));
      rotateHeads(at(x, row * heads * D), at(out, row * heads * D), heads, D, half, j, cosv, sinv, false);
    }
  }
  if (rotaryDim == D || out == x) return;
  for (let row = start; row < end; row++) {
    for (let h = 0; h < heads; h++) {
      const head = (row * heads + h) * D;
      for (let d = rotaryDim; d < D; d++) store<f32>(at(out, head + d), load<f32>(at(x, head + d)));
    }
  }
}
