/** Rotary position embedding in the rotate-half layout used by Qwen2, Llama, Gemma and Phi-3. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { kernels, writeIntoGrad } from './util.ts';

/**
 * x [batch, seq, heads·headDim]; positions i32 [batch·seq]; invFreq f32 [rotaryDim/2], the
 * inverse frequency of each rotated pair (models/rope-frequencies.ts). Its length sets how much
 * of each head turns: all of it, or the first rotaryDim values (partial rotary, Phi-3), the rest
 * passing through. cos and sin are multiplied by `scale` (LongRoPE's attention factor). The
 * backward of a (scaled) rotation is the inverse rotation of the incoming gradient, same scale.
 */
export function rope(
  x: Tensor,
  positions: Tensor,
  invFreq: Tensor,
  batch: number,
  seq: number,
  heads: number,
  headDim: number,
  scale = 1,
): Tensor {
  const rotaryDim = invFreq.size * 2;
  if (invFreq.dtype !== 'f32' || rotaryDim > headDim) {
    throw new Error(
      `rope: invFreq must be f32 [≤ ${headDim / 2}], got ${invFreq.dtype} [${invFreq.shape}]`,
    );
  }
  const k = kernels();
  const apply = (src: Tensor, dst: Tensor, inverse: boolean) =>
    k.ropeApply(
      {
        x: src.operand(),
        out: dst.operand(),
        positions: positions.operand(),
        invFreq: invFreq.operand(),
      },
      { B: batch, T: seq, H: heads, D: headDim, inverse, rotaryDim, scale },
    );
  const out = Tensor.empty(x.shape);
  apply(x, out, false);
  record(out, [x], (dy) => writeIntoGrad(x, (dx) => apply(dy, dx, true)));
  return out;
}
