/**
 * One adapted module's LoRA math outside training, as PEFT's LoraLayer / mlx-lm's LoRALinear hold
 * it (the trained forward and backward are lora-linear.ts and dora-linear.ts):
 *   adaptedLinear      x·Wᵀ + b through a LoRA or DoRA
 *   mixedBatchLinear   PEFT's _mixed_batch_forward: each row of a batch through its own adapter
 *                      (or none), as batched serving decodes requests for different adapters
 *   addEmbeddingLora   PEFT's Embedding LoRA term s·Aᵀ[ids]·Bᵀ
 *   loraDelta          s·B·A, what merging adds to W
 * Rows are grouped per adapter so each group costs one GEMM pair, and rows without an adapter
 * cost nothing beyond the base projection all rows share.
 */
import { LoraforgeError } from '../../util/errors.ts';
import type { DropoutSpec } from '../dropout.ts';
import { QuantizedWeight, type BaseWeight } from '../quant/quantized-weight.ts';
import { Tensor } from '../tensor.ts';
import { doraLinear } from './dora-linear.ts';
import { embedding } from './embedding.ts';
import { linear } from './linear.ts';
import { loraLinear, type LoraWeights } from './lora-linear.ts';
import { kernels, type OutputBlock } from './util.ts';

/**
 * x·Wᵀ + b + the adapter's term: DoRA when the LoRA carries a magnitude, plain LoRA otherwise;
 * `block`: only those output rows of a fused matrix (lora-linear.ts).
 */
export function adaptedLinear(
  x: Tensor,
  w: BaseWeight,
  bias: Tensor | null,
  lora: LoraWeights,
  dropout: DropoutSpec | null = null,
  block?: OutputBlock,
): Tensor {
  if (!lora.magnitude) return loraLinear(x, w, bias, lora, dropout, block);
  if (w instanceof QuantizedWeight) {
    throw new LoraforgeError(
      `DoRA on a ${w.type}-quantized weight is not supported yet`,
      'use plain LoRA (use_dora: false) on a quantized base, or load it unquantized',
    );
  }
  if (block && block.count !== w.shape[0]) {
    throw new LoraforgeError(
      'DoRA on a fused projection (qkv_proj, gate_up_proj) is not supported yet',
      'use plain LoRA (use_dora: false) for this model',
    );
  }
  return doraLinear(x, w, bias, { ...lora, magnitude: lora.magnitude }, dropout);
}

/** What one row's adapter changes in a linear module: its LoRA (or DoRA) and a trained bias. */
export interface RowAdapter {
  lora?: LoraWeights | null;
  /** Replaces the module's bias for this row (PEFT's bias="all"). */
  bias?: Tensor | null;
}

/**
 * x·Wᵀ + b for every row, each row through its own adapter (`perRow[i]`, null = the base module).
 * Plain LoRA adds s·(x·Aᵀ)·Bᵀ to its rows; DoRA and a trained bias change more than a low-rank
 * term, so their rows are recomputed. `block`: only those output rows of a fused matrix.
 * Inference only (no dropout).
 */
export function mixedBatchLinear(
  x: Tensor,
  w: BaseWeight,
  bias: Tensor | null,
  perRow: readonly (RowAdapter | null)[],
  block: OutputBlock = { offset: 0, count: w.shape[0]! },
): Tensor {
  const y = linear(x, w, bias, block);
  const plain = perRow.map((a) => (a?.lora && !a.lora.magnitude && !a.bias ? a.lora : null));
  for (const [lora, rows] of groupRows(plain)) addLoraRows(y, x, lora, rows, block);
  const recomputed = perRow.map((a) => (a && (a.lora?.magnitude || a.bias) ? a : null));
  return replaceRowGroups(y, recomputed, (rows, a) => {
    const xg = gatherRows(x, rows);
    const b = a.bias ?? bias;
    return a.lora ? adaptedLinear(xg, w, b, a.lora, null, block) : linear(xg, w, b, block);
  });
}

/** y[rows] += s·(x[rows]·Aᵀ)·Bᵀ, for `block`'s rows of B. */
function addLoraRows(
  y: Tensor,
  x: Tensor,
  lora: LoraWeights,
  rows: number[],
  block: OutputBlock,
): void {
  const k = kernels();
  const [rank, inFeatures] = lora.a.shape as [number, number];
  const outFeatures = y.shape.at(-1)!;
  const xa = Tensor.empty([rows.length, rank]);
  k.gemm(gatherRows(x, rows).operand(), lora.a.operand(), xa.operand(), {
    m: rows.length,
    n: rank,
    k: inFeatures,
    transB: true,
  });
  const delta = Tensor.empty([rows.length, outFeatures]);
  k.gemm(xa.operand(), lora.b.operand(block.offset * rank), delta.operand(), {
    m: rows.length,
    n: outFeatures,
    k: rank,
    transB: true,
    alpha: lora.scale,
  });
  k.scatterAddRows(
    { src: delta.operand(), idx: rowIndex(rows).operand(), dst: y.operand() },
    { rows: rows.length, cols: outFeatures },
  );
}

/**
 * `all` [n, cols] (computed without adapters) with the rows of each distinct non-null
 * `perRow` entry replaced by `compute(rows, entry)` [rows.length, cols]; returns `all`.
 */
export function replaceRowGroups<T>(
  all: Tensor,
  perRow: readonly (T | null)[],
  compute: (rows: number[], entry: T) => Tensor,
): Tensor {
  const cols = all.shape.at(-1)!;
  for (const [entry, rows] of groupRows(perRow)) {
    const out = compute(rows, entry);
    kernels().scatterRows(
      { src: out.operand(), idx: rowIndex(rows).operand(), dst: all.operand() },
      { rows: rows.length, cols },
    );
  }
  return all;
}

/** Rows `rows` of x (any dtype; [n] or [n, cols]) as a new tensor. */
export function gatherRows(x: Tensor, rows: number[]): Tensor {
  const cols = x.size / x.shape[0]!;
  const out = Tensor.empty([rows.length, ...x.shape.slice(1)], x.dtype);
  kernels().gatherRows(
    { src: x.operand(), idx: rowIndex(rows).operand(), dst: out.operand() },
    { rows: rows.length, cols },
  );
  return out;
}

function rowIndex(rows: number[]): Tensor {
  return Tensor.from(Int32Array.from(rows), [rows.length], 'i32');
}

/** Row indexes per distinct non-null entry, in order of first appearance. */
function groupRows<T>(perRow: readonly (T | null)[]): Map<T, number[]> {
  const groups = new Map<T, number[]>();
  perRow.forEach((entry, row) => {
    if (entry) groups.set(entry, [...(groups.get(entry) ?? []), row]);
  });
  return groups;
}

/** PEFT's Embedding LoRA: rows of Aᵀ [vocab, r] gathered per token, times s·Bᵀ [r, dim]. */
export interface EmbeddingLora {
  aT: Tensor;
  b: Tensor;
  scale: number;
}

/** h [ids, dim] += s·Aᵀ[ids]·Bᵀ in place, added after the (scaled) table lookup as PEFT does. */
export function addEmbeddingLora(h: Tensor, ids: Tensor, lora: EmbeddingLora): Tensor {
  const [rank, dim] = [lora.aT.shape[1]!, h.shape.at(-1)!];
  kernels().gemm(embedding(lora.aT, ids).operand(), lora.b.operand(), h.operand(), {
    m: ids.size,
    n: dim,
    k: rank,
    transB: true,
    alpha: lora.scale,
    beta: 1,
  });
  return h;
}

/**
 * s·B·A [out, in] in f32: the weight change a LoRA stands for (PEFT's get_delta_weight), which
 * merging adds to W. No gradient.
 */
export function loraDelta(lora: Pick<LoraWeights, 'a' | 'b' | 'scale'>): Tensor {
  const [rank, inFeatures] = lora.a.shape as [number, number];
  const outFeatures = lora.b.shape[0]!;
  const delta = Tensor.empty([outFeatures, inFeatures]);
  kernels().gemm(lora.b.operand(), lora.a.operand(), delta.operand(), {
    m: outFeatures,
    n: inFeatures,
    k: rank,
    alpha: lora.scale,
  });
  return delta;
}
