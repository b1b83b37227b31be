/** Rotary position embedding in the rotate-half layout used by Qwen2 and Llama. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { kernels, writeIntoGrad } from './util.ts';

/**
 * x [batch, seq, heads·headDim]; positions i32 [batch·seq]. The backward of a rotation is the
 * inverse rotation of the incoming gradient.
 */
export function rope(
  x: Tensor,
  positions: Tensor,
  batch: number,
  seq: number,
  heads: number,
  headDim: number,
  theta: number,
): Tensor {
  const k = kernels();
  const out = Tensor.empty(x.shape);
  k.ropeApply(
    x.operand(),
    out.operand(),
    positions.operand(),
    batch,
    seq,
    heads,
    headDim,
    theta,
    false,
  );
  record(out, [x], (dy) => {
    writeIntoGrad(x, (dx) =>
      k.ropeApply(
        dy.operand(),
        dx.operand(),
        positions.operand(),
        batch,
        seq,
        heads,
        headDim,
        theta,
        true,
      ),
    );
  });
  return out;
}
