/** RMSNorm: x · rsqrt(mean(x²) + eps) · w over the last dimension. */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { gradTarget, kernels, matrixDims, zeroedGrad } from './util.ts';

export function rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const k = kernels();
  const [rows, dim] = matrixDims(x);
  const out = Tensor.empty(x.shape);
  const rstd = Tensor.empty([rows]);
  k.rmsnormForward(x.operand(), w.operand(), out.operand(), rstd.operand(), rows, dim, eps);
  record(out, [x, w], (dy) => {
    const dw = w.requiresGrad ? zeroedGrad(w).operand() : null;
    const dx = gradTarget(x);
    k.rmsnormBackward(
      x.operand(),
      w.operand(),
      rstd.operand(),
      dy.operand(),
      dx.dst.operand(),
      dw,
      rows,
      dim,
    );
    dx.commit();
  });
  return out;
}
