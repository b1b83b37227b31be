/**
 * Rotate-half RoPE of x [B, T, H, D] at positions i32 [B, T]: the first `rotaryDim` values of each
 * head (all D, or fewer: partial rotary, Phi-3) turn in pairs (j, j + rotaryDim/2) by the angle
 * f32(position · invFreq[j]), invFreq the model's f32 [rotaryDim/2] table
 * (models/rope-frequencies.ts), with cos and sin multiplied by `scale` in f32 (LongRoPE's
 * attention factor; 1 otherwise); the other values are copied. `inverse` turns by −angle, which is
 * also the backward. out may be x. H is the heads of x (query or key/value heads).
 */
import { defineKernel } from './spec.ts';

/**
 * cos / sin of the angle position · invFreq exactly as Hugging Face computes them in float32:
 * angle = f32(pos · inv_freq), cos / sin of that rounded to f32.
 */
export function ropeAngle(pos: number, invFreq: number): { cos: number; sin: number } {
  const f = Math.fround;
  const angle = f(pos * f(invFreq));
  return { cos: f(Math.cos(angle)), sin: f(Math.sin(angle)) };
}

export const ropeApply = defineKernel({
  name: 'ropeApply',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
    positions: { dtype: 'i32', access: 'read' },
    invFreq: { dtype: 'f32', access: 'read' },
  },
  params: {
    B: 'u32',
    T: 'u32',
    H: 'u32',
    D: 'u32',
    inverse: 'bool',
    rotaryDim: 'u32',
    scale: 'f32',
  },
  reference({ x, out, positions, invFreq }, { B, T, H, D, inverse, rotaryDim, scale }) {
    const f = Math.fround;
    const half = rotaryDim / 2;
    for (let bt = 0; bt < B * T; bt++) {
      for (let j = 0; j < half; j++) {
        const angle = ropeAngle(positions[bt]!, invFreq[j]!);
        const cos = f(angle.cos * f(scale));
        const sin = f(angle.sin * f(scale)) * (inverse ? -1 : 1);
        for (let h = 0; h < H; h++) {
          const off = (bt * H + h) * D + j;
          const x1 = x[off]!;
          const x2 = x[off + half]!;
          out[off] = x1 * cos - x2 * sin;
          out[off + half] = x2 * cos + x1 * sin;
        }
      }
      for (let h = 0; h < H; h++) {
        for (let d = rotaryDim; d < D; d++) out[(bt * H + h) * D + d] = x[(bt * H + h) * D + d]!;
      }
    }
  },
});

export const ROPE = { ropeApply } as const;
