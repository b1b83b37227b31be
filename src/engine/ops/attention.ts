/**
 * Causal grouped-query attention over [batch, seq, heads·headDim] projections, flash-style: the
 * kernels keep only the per-row log-sum-exp for the backward pass, never a [T × T] matrix.
 */
import type { AttentionDims } from '../backend.ts';
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { gradTarget, kernels } from './util.ts';

export interface AttentionShape {
  batch: number;
  seq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Score scale (default 1/√headDim). */
  scale?: number;
  /** Sliding window: a query sees itself and the window − 1 keys before it (0 or absent: all). */
  window?: number;
}

/**
 * `keyMask` i32 [batch·seq] (0 = padding key) and `segmentIds` i32 [batch·seq] (packed documents
 * attend only within themselves) are optional.
 */
export function attention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  shape: AttentionShape,
  keyMask: Tensor | null = null,
  segmentIds: Tensor | null = null,
): Tensor {
  const kern = kernels();
  const { batch, seq, heads, kvHeads, headDim, window = 0 } = shape;
  const dims: AttentionDims = {
    batch,
    queryLen: seq,
    keyLen: seq,
    kvCapacity: seq,
    heads,
    kvHeads,
    headDim,
    scale: shape.scale ?? 1 / Math.sqrt(headDim),
    window,
  };
  const out = Tensor.empty(q.shape);
  const lse = Tensor.empty([batch, heads, seq]);
  const mask = keyMask?.operand() ?? null;
  const seg = segmentIds?.operand() ?? null;
  kern.attentionForward(
    q.operand(),
    k.operand(),
    v.operand(),
    out.operand(),
    lse.operand(),
    mask,
    seg,
    dims,
  );
  record(out, [q, k, v], (dOut) => {
    const dq = gradTarget(q);
    const dk = gradTarget(k);
    const dv = gradTarget(v);
    kern.attentionBackward(
      q.operand(),
      k.operand(),
      v.operand(),
      out.operand(),
      lse.operand(),
      dOut.operand(),
      dq.dst.operand(),
      dk.dst.operand(),
      dv.dst.operand(),
      mask,
      seg,
      dims,
    );
    dq.commit();
    dk.commit();
    dv.commit();
  });
  return out;
}
