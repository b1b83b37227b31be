/** y = x·Wᵀ + b, the projection every transformer block is made of. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { gemmIntoGrad, kernels, matrixDims, zeroedGrad } from './util.ts';

/** x [..., in], w [out, in] (f32 or a half storage type), b [out] f32 or null → [..., out]. */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  const [rows, inFeatures] = matrixDims(x);
  const [outFeatures, wIn] = w.shape as [number, number];
  if (wIn !== inFeatures) throw new Error(`linear: x [..., ${inFeatures}] vs weight [${w.shape}]`);
  const y = Tensor.empty([...x.shape.slice(0, -1), outFeatures]);
  kernels().gemm(x.operand(), w.operand(), y.operand(), {
    m: rows,
    n: outFeatures,
    k: inFeatures,
    transB: true,
    bias: b?.operand(),
  });
  record(y, [x, w, b], (dy) => linearBackward(x, w, b, dy, rows, inFeatures, outFeatures));
  return y;
}

export function linearBackward(
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  dy: Tensor,
  rows: number,
  inFeatures: number,
  outFeatures: number,
): void {
  const k = kernels();
  if (x.requiresGrad) {
    gemmIntoGrad(x, (dx, beta) =>
      k.gemm(dy.operand(), w.operand(), dx.operand(), {
        m: rows,
        n: inFeatures,
        k: outFeatures,
        beta,
      }),
    );
  }
  if (w.requiresGrad) {
    gemmIntoGrad(w, (dw, beta) =>
      k.gemm(dy.operand(), x.operand(), dw.operand(), {
        m: outFeatures,
        n: inFeatures,
        k: rows,
        transA: true,
        beta,
      }),
    );
  }
  if (b?.requiresGrad)
    k.sumRows({ x: dy.operand(), out: zeroedGrad(b).operand() }, { rows, cols: outFeatures });
}
