/**
 * LoRA linear: y = x·Wᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ with W frozen and A [r, in], B [out, r] trainable.
 * The low-rank activation x·Aᵀ [rows, r] is computed once and reused by the backward pass; the
 * dropped-out input is not kept: the backward pass redraws it from the same seed.
 */
import type { DropoutSpec } from '../dropout.ts';
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import type { BaseWeight } from '../quant/quantized-weight.ts';
import { linearBackward, projectInto, trainable } from './linear.ts';
import {
  blockGrad,
  gemmIntoGrad,
  kernels,
  matrixDims,
  writeIntoGrad,
  type OutputBlock,
} from './util.ts';

export interface LoraWeights {
  a: Tensor;
  b: Tensor;
  scale: number;
  /** DoRA: the magnitude vector [out] and, for inference, m/‖W + s·B·A‖ (ops/dora-linear.ts). */
  magnitude?: Tensor | null;
  columnScale?: Tensor | null;
}

/**
 * `dropout` applies LoRA dropout to the adapter path only, as PEFT does, with the mask drawn from
 * its seed (engine/dropout.ts); null means no dropout. `block` computes only those output
 * features (rows of W, b and B) of a fused matrix: the blocks of one fused projection share A,
 * and share the dropout mask when they are given the same seed.
 */
export function loraLinear(
  x: Tensor,
  w: BaseWeight,
  bias: Tensor | null,
  lora: LoraWeights,
  dropout: DropoutSpec | null = null,
  block?: OutputBlock,
): Tensor {
  const k = kernels();
  const [rows, inFeatures] = matrixDims(x);
  const rank = lora.a.shape[0]!;
  const { y, xd, xa, dropped, offset, outFeatures } = lowRankForward(
    x,
    w,
    bias,
    lora,
    dropout,
    block,
  );
  k.gemm(xa.operand(), lora.b.operand(offset * rank), y.operand(), {
    m: rows,
    n: outFeatures,
    k: rank,
    transB: true,
    alpha: lora.scale,
    beta: 1,
  });
  if (xd !== x) xd.dispose();

  record(y, [x, trainable(w), bias, lora.a, lora.b], (dy) => {
    linearBackward(x, w, bias, dy, rows, inFeatures, { offset, count: outFeatures });
    const dxa = lowRankBackward(dy, xa, dropped, x, lora, block);
    if (!dxa) return;
    if (!x.requiresGrad) return;
    // linearBackward already wrote dy·W into x.grad; add the adapter path's share.
    if (dropout) {
      writeIntoGrad(x, (dst) => {
        k.gemm(dxa.operand(), lora.a.operand(), dst.operand(), { m: rows, n: inFeatures, k: rank });
        k.dropout(
          { x: dst.operand(), out: dst.operand() },
          { n: x.size, p: dropout.p, seed: dropout.seed },
        );
      });
    } else {
      gemmIntoGrad(x, (dx, beta) =>
        k.gemm(dxa.operand(), lora.a.operand(), dx.operand(), {
          m: rows,
          n: inFeatures,
          k: rank,
          beta,
        }),
      );
    }
  });
  return y;
}

/**
 * Backward of the low-rank path s·(x̃·Aᵀ)·Bᵀ given its output gradient `dLow` [rows, out] (of
 * `block`'s rows of B, or all of them): accumulates dB = s·dLowᵀ·(x̃·Aᵀ) and dA = dxaᵀ·x̃ (x̃
 * redrawn by `dropped`, disposed here when it is not x) and returns dxa = s·dLow·B [rows, r] for
 * the input gradient, or null when neither A nor x needs it.
 */
export function lowRankBackward(
  dLow: Tensor,
  xa: Tensor,
  dropped: () => Tensor,
  x: Tensor,
  lora: LoraWeights,
  block?: OutputBlock,
): Tensor | null {
  const k = kernels();
  const [rows, inFeatures] = matrixDims(x);
  const rank = lora.b.shape[1]!;
  const { offset, count: outFeatures } = block ?? { offset: 0, count: lora.b.shape[0]! };
  if (lora.b.requiresGrad) {
    const { grad, beta } = blockGrad(lora.b, outFeatures === lora.b.shape[0]);
    k.gemm(dLow.operand(), xa.operand(), grad.operand(offset * rank), {
      m: outFeatures,
      n: rank,
      k: rows,
      transA: true,
      alpha: lora.scale,
      beta,
    });
  }
  if (!lora.a.requiresGrad && !x.requiresGrad) return null;
  const dxa = Tensor.empty([rows, rank]);
  k.gemm(dLow.operand(), lora.b.operand(offset * rank), dxa.operand(), {
    m: rows,
    n: rank,
    k: outFeatures,
    alpha: lora.scale,
  });
  if (lora.a.requiresGrad) {
    const xd = dropped();
    gemmIntoGrad(lora.a, (da, beta) =>
      k.gemm(dxa.operand(), xd.operand(), da.operand(), {
        m: rank,
        n: inFeatures,
        k: rows,
        transA: true,
        beta,
      }),
    );
    if (xd !== x) xd.dispose();
  }
  return dxa;
}

/**
 * The forward start LoRA and DoRA share: y = x·Wᵀ + b (of `block`'s rows, or all), x̃ = drop(x)
 * and x̃·Aᵀ [rows, r], plus `dropped` to redraw x̃ in the backward pass (x itself without dropout;
 * otherwise a fresh tensor the caller disposes, as it does `xd` when it is not x).
 */
export function lowRankForward(
  x: Tensor,
  w: BaseWeight,
  bias: Tensor | null,
  lora: LoraWeights,
  dropout: DropoutSpec | null,
  block?: OutputBlock,
): {
  y: Tensor;
  xd: Tensor;
  xa: Tensor;
  dropped: () => Tensor;
  offset: number;
  outFeatures: number;
} {
  const k = kernels();
  const [rows, inFeatures] = matrixDims(x);
  const { offset, count: outFeatures } = block ?? { offset: 0, count: w.shape[0]! };
  const rank = lora.a.shape[0]!;
  const y = Tensor.empty([...x.shape.slice(0, -1), outFeatures]);
  projectInto(x, w, bias, { offset, count: outFeatures }, y);
  const dropped = (): Tensor => {
    if (!dropout) return x;
    const out = Tensor.empty(x.shape);
    k.dropout(
      { x: x.operand(), out: out.operand() },
      { n: x.size, p: dropout.p, seed: dropout.seed },
    );
    return out;
  };
  const xd = dropped();
  const xa = Tensor.empty([rows, rank]);
  k.gemm(xd.operand(), lora.a.operand(), xa.operand(), {
    m: rows,
    n: rank,
    k: inFeatures,
    transB: true,
  });
  return { y, xd, xa, dropped, offset, outFeatures };
}
