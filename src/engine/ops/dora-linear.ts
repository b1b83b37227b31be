/**
 * DoRA (weight-decomposed LoRA, PEFT's use_dora) for inference:
 *   y = g ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ) + b,   g = m / ‖W + s·B·A‖ (one norm per output row of W)
 * which is PEFT's DoraLinearLayer: base result plus (g − 1)·x·Wᵀ + g·s·x·Aᵀ·Bᵀ, with the norm
 * detached. g is constant once the weights are, so it is computed once per attached adapter.
 */
import { noGrad } from '../tape.ts';
import { Tensor, tidy } from '../tensor.ts';
import type { LoraWeights } from './lora-linear.ts';
import { kernels, matrixDims } from './util.ts';

/**
 * m / ‖W + s·B·A‖ per output row [out] of weight W [out, in] (any float dtype); with
 * `magnitude` null, the norms themselves (DoRA's initial magnitude, as PEFT's update_layer).
 */
export function doraColumnScale(
  w: Tensor,
  lora: { a: Tensor; b: Tensor },
  scale: number,
  magnitude: Tensor | null,
): Tensor {
  const [outFeatures, inFeatures] = w.shape as [number, number];
  const rank = lora.a.shape[0]!;
  return noGrad(() =>
    tidy(() => {
      const k = kernels();
      const v = Tensor.empty([outFeatures, inFeatures]);
      k.convert(w.operand(), v.operand(), w.size);
      if (scale !== 0) {
        k.gemm(lora.b.operand(), lora.a.operand(), v.operand(), {
          m: outFeatures,
          n: inFeatures,
          k: rank,
          alpha: scale,
          beta: 1,
        });
      }
      // RMSNorm with eps 0 and unit weights yields rstd = √in / ‖row‖.
      const ones = Tensor.from(new Float32Array(inFeatures).fill(1), [inFeatures]);
      const normalized = Tensor.empty([outFeatures, inFeatures]);
      const rstd = Tensor.empty([outFeatures]);
      k.rmsnormForward(
        v.operand(),
        ones.operand(),
        normalized.operand(),
        rstd.operand(),
        outFeatures,
        inFeatures,
        0,
      );
      const out = Tensor.empty([outFeatures]);
      if (magnitude) {
        k.scaleColumns(magnitude.operand(), rstd.operand(), out.operand(), 1, outFeatures);
        k.axpby(out.operand(), out.operand(), outFeatures, 1 / Math.sqrt(inFeatures), 0);
      } else {
        const r = rstd.readSync() as Float32Array;
        const norms = Float32Array.from(r, (x) => Math.sqrt(inFeatures) / x);
        return Tensor.from(norms, [outFeatures]);
      }
      return out;
    }),
  );
}

/** DoRA projection for inference; `columnScale` is doraColumnScale(w, lora, lora.scale, m). */
export function doraLinear(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  lora: LoraWeights,
  columnScale: Tensor,
): Tensor {
  const k = kernels();
  const [rows, inFeatures] = matrixDims(x);
  const outFeatures = w.shape[0]!;
  const rank = lora.a.shape[0]!;
  const y = Tensor.empty([...x.shape.slice(0, -1), outFeatures]);
  tidy(() => {
    const t = Tensor.empty([rows, outFeatures]);
    k.gemm(x.operand(), w.operand(), t.operand(), {
      m: rows,
      n: outFeatures,
      k: inFeatures,
      transB: true,
    });
    const xa = Tensor.empty([rows, rank]);
    k.gemm(x.operand(), lora.a.operand(), xa.operand(), {
      m: rows,
      n: rank,
      k: inFeatures,
      transB: true,
    });
    k.gemm(xa.operand(), lora.b.operand(), t.operand(), {
      m: rows,
      n: outFeatures,
      k: rank,
      transB: true,
      alpha: lora.scale,
      beta: 1,
    });
    k.scaleColumns(t.operand(), columnScale.operand(), y.operand(), rows, outFeatures);
    if (bias) {
      // y += 1·bias on every row: a rank-1 GEMM (the backends have no broadcast add).
      const ones = Tensor.from(new Float32Array(rows).fill(1), [rows, 1]);
      k.gemm(ones.operand(), bias.operand(), y.operand(), {
        m: rows,
        n: outFeatures,
        k: 1,
        beta: 1,
      });
    }
  });
  return y;
}
