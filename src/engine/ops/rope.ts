/** Rotary position embedding in the rotate-half layout used by Qwen2 and Llama. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { kernels, writeIntoGrad } from './util.ts';

/**
 * x [batch, seq, heads·headDim]; positions i32 [batch·seq]; invFreq f32 [headDim/2], the inverse
 * frequency of each rotated pair (models/rope-frequencies.ts). The backward of a rotation is the
 * inverse rotation of the incoming gradient.
 */
export function rope(
  x: Tensor,
  positions: Tensor,
  invFreq: Tensor,
  batch: number,
  seq: number,
  heads: number,
  headDim: number,
): Tensor {
  if (invFreq.dtype !== 'f32' || invFreq.size !== headDim / 2) {
    throw new Error(
      `rope: invFreq must be f32 [${headDim / 2}], got ${invFreq.dtype} [${invFreq.shape}]`,
    );
  }
  const k = kernels();
  const out = Tensor.empty(x.shape);
  k.ropeApply(
    {
      x: x.operand(),
      out: out.operand(),
      positions: positions.operand(),
      invFreq: invFreq.operand(),
    },
    { B: batch, T: seq, H: heads, D: headDim, inverse: false },
  );
  record(out, [x], (dy) => {
    writeIntoGrad(x, (dx) =>
      k.ropeApply(
        {
          x: dy.operand(),
          out: dx.operand(),
          positions: positions.operand(),
          invFreq: invFreq.operand(),
        },
        { B: batch, T: seq, H: heads, D: headDim, inverse: true },
      ),
    );
  });
  return out;
}
