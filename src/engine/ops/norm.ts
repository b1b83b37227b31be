/**
 * RMSNorm: x · rsqrt(mean(x²) + eps) · w over consecutive groups of w.size elements: the last
 * dimension, or each head of a [tokens, heads·headDim] projection when w is [headDim] (q/k norms).
 */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { gradTarget, kernels, zeroedGrad } from './util.ts';

export function rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const k = kernels();
  const dim = w.size;
  const rows = x.size / dim;
  if (!Number.isInteger(rows)) throw new Error(`rmsNorm: [${x.shape}] is not in groups of ${dim}`);
  const out = Tensor.empty(x.shape);
  const rstd = Tensor.empty([rows]);
  k.rmsnormForward(
    { x: x.operand(), w: w.operand(), out: out.operand(), rstd: rstd.operand() },
    { rows, dim, eps },
  );
  record(out, [x, w], (dy) => {
    const dw = w.requiresGrad ? zeroedGrad(w).operand() : null;
    const dx = gradTarget(x);
    k.rmsnormBackward(
      {
        x: x.operand(),
        w: w.operand(),
        rstd: rstd.operand(),
        dout: dy.operand(),
        dx: dx.dst.operand(),
        dw,
      },
      { rows, dim },
    );
    dx.commit();
  });
  return out;
}
