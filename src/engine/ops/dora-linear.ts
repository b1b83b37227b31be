/**
 * DoRA (weight-decomposed LoRA, PEFT's use_dora), as PEFT's DoraLinearLayer computes it:
 *   y = x·Wᵀ + b + (g − 1) ⊙ (x̃·Wᵀ) + g ⊙ s·(x̃·Aᵀ)·Bᵀ,   g = m / ‖W + s·B·A‖
 * with x̃ the dropped-out input (x itself without dropout, where y = g ⊙ (x·Wᵀ + s·x·Aᵀ·Bᵀ) + b),
 * one norm per output row of W, and the norm detached (no gradient flows through it, as PEFT).
 * Backward, with dy·g written dyg:
 *   dB, dA: plain LoRA's with dyg in place of dy (lowRankBackward)
 *   dm = Σ_rows dy ⊙ (x̃·Wᵀ + s·x̃·Aᵀ·Bᵀ) / ‖W + s·B·A‖
 *   dx = dy·W + drop((dy ⊙ (g − 1))·W + s·dyg·B·A)
 */
import type { DropoutSpec } from '../dropout.ts';
import { noGrad, record } from '../tape.ts';
import { Tensor, tidy } from '../tensor.ts';
import { linearBackward } from './linear.ts';
import { lowRankBackward, lowRankForward, type LoraWeights } from './lora-linear.ts';
import { gemmIntoGrad, kernels, matrixDims, writeIntoGrad, zeroedGrad } from './util.ts';

/** 1 / ‖W + s·B·A‖ per output row [out] of W [out, in] (any float dtype); no gradient. */
export function doraInverseNorms(w: Tensor, a: Tensor, b: Tensor, scale: number): Tensor {
  const [outFeatures, inFeatures] = w.shape as [number, number];
  return noGrad(() =>
    tidy(() => {
      const k = kernels();
      const v = Tensor.empty([outFeatures, inFeatures]);
      k.convert({ src: w.operand(), dst: v.operand() }, { n: w.size });
      if (scale !== 0) {
        k.gemm(b.operand(), a.operand(), v.operand(), {
          m: outFeatures,
          n: inFeatures,
          k: a.shape[0]!,
          alpha: scale,
          beta: 1,
        });
      }
      // RMSNorm with eps 0 and unit weights leaves rstd = √in / ‖row‖ in its second output.
      const ones = Tensor.from(new Float32Array(inFeatures).fill(1), [inFeatures]);
      const normalized = Tensor.empty([outFeatures, inFeatures]);
      const inverse = Tensor.empty([outFeatures]);
      k.rmsnormForward(
        { x: v.operand(), w: ones.operand(), out: normalized.operand(), rstd: inverse.operand() },
        { rows: outFeatures, dim: inFeatures, eps: 0 },
      );
      k.axpby(
        { x: inverse.operand(), y: inverse.operand() },
        { n: outFeatures, alpha: 1 / Math.sqrt(inFeatures), beta: 0 },
      );
      return inverse;
    }),
  );
}

/** ‖W‖ per output row: DoRA's initial magnitude (B = 0), as PEFT's update_layer sets it. */
export function doraInitialMagnitude(w: Tensor, a: Tensor, b: Tensor): Tensor {
  const inverse = doraInverseNorms(w, a, b, 0);
  const norms = Float32Array.from(inverse.readSync() as Float32Array, (v) => 1 / v);
  inverse.dispose();
  return Tensor.from(norms, [norms.length]);
}

/** g = m / ‖W + s·B·A‖ [out]: constant for inference, so computed once per attached adapter. */
export function doraColumnScale(w: Tensor, lora: LoraWeights, magnitude: Tensor): Tensor {
  const outFeatures = w.shape[0]!;
  return noGrad(() =>
    tidy(() => {
      const inverse = doraInverseNorms(w, lora.a, lora.b, lora.scale);
      const g = Tensor.empty([outFeatures]);
      kernels().scaleColumns(
        { x: magnitude.operand(), scale: inverse.operand(), out: g.operand() },
        { rows: 1, cols: outFeatures },
      );
      return g;
    }),
  );
}

/**
 * DoRA projection. `lora.magnitude` is m; `lora.columnScale`, when given (inference), is the
 * precomputed g and no gradient is recorded for m.
 */
export function doraLinear(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  lora: LoraWeights & { magnitude: Tensor },
  dropout: DropoutSpec | null = null,
): Tensor {
  const k = kernels();
  const [rows, inFeatures] = matrixDims(x);
  const outFeatures = w.shape[0]!;
  const rank = lora.a.shape[0]!;
  const m = lora.magnitude;
  const inverse = lora.columnScale ? null : doraInverseNorms(w, lora.a, lora.b, lora.scale);
  const g = lora.columnScale ?? Tensor.empty([outFeatures]);
  if (inverse)
    k.scaleColumns(
      { x: m.operand(), scale: inverse.operand(), out: g.operand() },
      { rows: 1, cols: outFeatures },
    );
  const gMinusOne = Tensor.from(new Float32Array(outFeatures).fill(-1), [outFeatures]);
  k.add({ a: gMinusOne.operand(), b: g.operand(), out: gMinusOne.operand() }, { n: outFeatures });

  const gemmW = (src: Tensor, dst: Tensor) =>
    k.gemm(src.operand(), w.operand(), dst.operand(), {
      m: rows,
      n: outFeatures,
      k: inFeatures,
      transB: true,
    });
  /** dst = s·xa·Bᵀ [rows, out]. */
  const loraOut = (xa: Tensor, dst: Tensor, beta: number) =>
    k.gemm(xa.operand(), lora.b.operand(), dst.operand(), {
      m: rows,
      n: outFeatures,
      k: rank,
      transB: true,
      alpha: lora.scale,
      beta,
    });

  const { y, xd, xa, dropped } = lowRankForward(x, w, bias, lora, dropout);
  tidy(() => {
    // Scaled copies rather than in place: a WebGPU dispatch cannot bind one buffer twice.
    const u = Tensor.empty([rows, outFeatures]);
    const scaled = Tensor.empty([rows, outFeatures]);
    if (dropout) {
      gemmW(xd, u);
      k.scaleColumns(
        { x: u.operand(), scale: gMinusOne.operand(), out: scaled.operand() },
        { rows, cols: outFeatures },
      );
    } else {
      // x̃ = x: (g − 1)·x·Wᵀ = (g − 1)·(y − b), without a second pass over W.
      k.scaleColumns(
        { x: y.operand(), scale: gMinusOne.operand(), out: scaled.operand() },
        { rows, cols: outFeatures },
      );
      if (bias) {
        const shift = Tensor.empty([outFeatures]);
        k.scaleColumns(
          { x: bias.operand(), scale: gMinusOne.operand(), out: shift.operand() },
          { rows: 1, cols: outFeatures },
        );
        const ones = Tensor.from(new Float32Array(rows).fill(1), [rows, 1]);
        k.gemm(ones.operand(), shift.operand(), scaled.operand(), {
          m: rows,
          n: outFeatures,
          k: 1,
          alpha: -1,
          beta: 1,
        });
      }
    }
    k.add({ a: y.operand(), b: scaled.operand(), out: y.operand() }, { n: y.size });
    loraOut(xa, u, 0);
    k.scaleColumns(
      { x: u.operand(), scale: g.operand(), out: scaled.operand() },
      { rows, cols: outFeatures },
    );
    k.add({ a: y.operand(), b: scaled.operand(), out: y.operand() }, { n: y.size });
  });
  if (xd !== x) xd.dispose();

  record(y, [x, w, bias, lora.a, lora.b, lora.columnScale ? null : m], (dy) => {
    // Without dropout (x̃ = x) and with W frozen, dx's two passes over W fold into (dy ⊙ g)·W.
    const folded = !dropout && !w.requiresGrad;
    if (!folded)
      linearBackward(x, w, bias, dy, rows, inFeatures, { offset: 0, count: outFeatures });
    else if (bias?.requiresGrad)
      k.sumRows({ x: dy.operand(), out: zeroedGrad(bias).operand() }, { rows, cols: outFeatures });
    if (!lora.columnScale && m.requiresGrad && inverse) {
      // dm = Σ_rows dy ⊙ (x̃·Wᵀ + s·x̃·Aᵀ·Bᵀ), divided by the detached norm.
      const xdAgain = dropped();
      const t = Tensor.empty([rows, outFeatures]);
      gemmW(xdAgain, t);
      if (xdAgain !== x) xdAgain.dispose();
      loraOut(xa, t, 1);
      const dots = Tensor.zeros([outFeatures]);
      k.columnDots(
        { a: dy.operand(), b: t.operand(), out: dots.operand() },
        { rows, cols: outFeatures },
      );
      writeIntoGrad(m, (dst) =>
        k.scaleColumns(
          { x: dots.operand(), scale: inverse.operand(), out: dst.operand() },
          { rows: 1, cols: outFeatures },
        ),
      );
    }
    const dyg = Tensor.empty([rows, outFeatures]);
    k.scaleColumns(
      { x: dy.operand(), scale: g.operand(), out: dyg.operand() },
      { rows, cols: outFeatures },
    );
    const dxa = lowRankBackward(dyg, xa, dropped, x, lora);
    if (!dxa || !x.requiresGrad) return;
    if (folded) {
      gemmIntoGrad(x, (dx, beta) =>
        k.gemm(dyg.operand(), w.operand(), dx.operand(), {
          m: rows,
          n: inFeatures,
          k: outFeatures,
          beta,
        }),
      );
      gemmIntoGrad(x, (dx, beta) =>
        k.gemm(dxa.operand(), lora.a.operand(), dx.operand(), {
          m: rows,
          n: inFeatures,
          k: rank,
          beta,
        }),
      );
      return;
    }
    // linearBackward wrote dy·W into x.grad; add drop((dy ⊙ (g − 1))·W + dxa·A).
    writeIntoGrad(x, (dst) => {
      const dyc = Tensor.empty([rows, outFeatures]);
      k.scaleColumns(
        { x: dy.operand(), scale: gMinusOne.operand(), out: dyc.operand() },
        { rows, cols: outFeatures },
      );
      k.gemm(dyc.operand(), w.operand(), dst.operand(), { m: rows, n: inFeatures, k: outFeatures });
      k.gemm(dxa.operand(), lora.a.operand(), dst.operand(), {
        m: rows,
        n: inFeatures,
        k: rank,
        beta: 1,
      });
      if (dropout)
        k.dropout(
          { x: dst.operand(), out: dst.operand() },
          { n: x.size, p: dropout.p, seed: dropout.seed },
        );
    });
  });
  return y;
}
