/** y = x·Wᵀ + b, the projection every transformer block is made of. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import {
  blockGrad,
  gemmIntoGrad,
  kernels,
  matrixDims,
  zeroedGrad,
  type OutputBlock,
} from './util.ts';

/**
 * x [..., in], w [out, in] (f32 or a half storage type), b [out] f32 or null → [..., out], or
 * with `block` only those output features (rows of w and b) → [..., block.count].
 */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null, block?: OutputBlock): Tensor {
  const [rows, inFeatures] = matrixDims(x);
  const [outFeatures, wIn] = w.shape as [number, number];
  if (wIn !== inFeatures) throw new Error(`linear: x [..., ${inFeatures}] vs weight [${w.shape}]`);
  const { offset, count } = block ?? { offset: 0, count: outFeatures };
  const y = Tensor.empty([...x.shape.slice(0, -1), count]);
  kernels().gemm(x.operand(), w.operand(offset * inFeatures), y.operand(), {
    m: rows,
    n: count,
    k: inFeatures,
    transB: true,
    bias: b?.operand(offset),
  });
  record(y, [x, w, b], (dy) => linearBackward(x, w, b, dy, rows, inFeatures, { offset, count }));
  return y;
}

/** Gradients of y = x·W_blockᵀ + b_block into x, and into the block's rows of w and b. */
export function linearBackward(
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  dy: Tensor,
  rows: number,
  inFeatures: number,
  { offset, count }: OutputBlock,
): void {
  const k = kernels();
  if (x.requiresGrad) {
    gemmIntoGrad(x, (dx, beta) =>
      k.gemm(dy.operand(), w.operand(offset * inFeatures), dx.operand(), {
        m: rows,
        n: inFeatures,
        k: count,
        beta,
      }),
    );
  }
  if (w.requiresGrad) {
    const { grad, beta } = blockGrad(w, count === w.shape[0]);
    k.gemm(dy.operand(), x.operand(), grad.operand(offset * inFeatures), {
      m: count,
      n: inFeatures,
      k: rows,
      transA: true,
      beta,
    });
  }
  if (b?.requiresGrad)
    k.sumRows({ x: dy.operand(), out: zeroedGrad(b).operand(offset) }, { rows, cols: count });
}
