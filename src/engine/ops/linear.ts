/** y = x·Wᵀ + b, the projection every transformer block is made of. */
import { QuantizedWeight, type BaseWeight } from '../quant/quantized-weight.ts';
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { quantizedInputGrad, quantizedMatmulInto } from './quantized-linear.ts';
import {
  blockGrad,
  gemmIntoGrad,
  kernels,
  matrixDims,
  zeroedGrad,
  type OutputBlock,
} from './util.ts';

/**
 * x [..., in], w [out, in] (f32, a half storage type, or quantized), b [out] f32 or null →
 * [..., out], or with `block` only those output features (rows of w and b) → [..., block.count].
 */
export function linear(
  x: Tensor,
  w: BaseWeight,
  b: Tensor | null = null,
  block?: OutputBlock,
): Tensor {
  const [rows, inFeatures] = matrixDims(x);
  const { offset, count } = block ?? { offset: 0, count: w.shape[0]! };
  const y = Tensor.empty([...x.shape.slice(0, -1), count]);
  projectInto(x, w, b, { offset, count }, y);
  record(y, [x, trainable(w), b], (dy) =>
    linearBackward(x, w, b, dy, rows, inFeatures, { offset, count }),
  );
  return y;
}

/** The tensor of w that may need a gradient (a quantized weight is always frozen). */
export function trainable(w: BaseWeight): Tensor | null {
  return w instanceof QuantizedWeight ? null : w;
}

/** y [rows, block.count] = x·W_blockᵀ + b_block, for a dense or a quantized W. */
export function projectInto(
  x: Tensor,
  w: BaseWeight,
  b: Tensor | null,
  { offset, count }: OutputBlock,
  y: Tensor,
): void {
  const [rows, inFeatures] = matrixDims(x);
  if (w.shape[1] !== inFeatures)
    throw new Error(`linear: x [..., ${inFeatures}] vs weight [${w.shape}]`);
  if (w instanceof QuantizedWeight) return quantizedMatmulInto(x, w, b, { offset, count }, y);
  kernels().gemm(x.operand(), w.operand(offset * inFeatures), y.operand(), {
    m: rows,
    n: count,
    k: inFeatures,
    transB: true,
    bias: b?.operand(offset),
  });
}

/** Gradients of y = x·W_blockᵀ + b_block into x, and into the block's rows of w and b. */
export function linearBackward(
  x: Tensor,
  w: BaseWeight,
  b: Tensor | null,
  dy: Tensor,
  rows: number,
  inFeatures: number,
  { offset, count }: OutputBlock,
): void {
  const k = kernels();
  if (x.requiresGrad) {
    gemmIntoGrad(x, (dx, beta) =>
      w instanceof QuantizedWeight
        ? quantizedInputGrad(dy, w, { offset, count }, dx, beta)
        : k.gemm(dy.operand(), w.operand(offset * inFeatures), dx.operand(), {
            m: rows,
            n: inFeatures,
            k: count,
            beta,
          }),
    );
  }
  if (w instanceof Tensor && w.requiresGrad) {
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
