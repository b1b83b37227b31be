/**
 * Causal grouped-query attention over [batch, seq, heads·headDim] projections, flash-style: the
 * kernels keep only the per-row log-sum-exp for the backward pass, never a [T × T] matrix.
 */
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
  const { batch: B, seq: T, heads: H, kvHeads: KVH, headDim: D, window = 0 } = shape;
  const scale = shape.scale ?? 1 / Math.sqrt(D);
  const out = Tensor.empty(q.shape);
  const lse = Tensor.empty([B, H, T]);
  const masks = { keyMask: keyMask?.operand() ?? null, segIds: segmentIds?.operand() ?? null };
  const inputs = { q: q.operand(), k: k.operand(), v: v.operand(), out: out.operand() };
  kern.attentionForward(
    { ...inputs, lse: lse.operand(), ...masks },
    { B, Tq: T, Tk: T, kvCap: T, H, KVH, D, scale, window },
  );
  record(out, [q, k, v], (dOut) => {
    const dq = gradTarget(q);
    const dk = gradTarget(k);
    const dv = gradTarget(v);
    kern.attentionBackward(
      {
        ...inputs,
        lse: lse.operand(),
        dout: dOut.operand(),
        dq: dq.dst.operand(),
        dk: dk.dst.operand(),
        dv: dv.dst.operand(),
        ...masks,
      },
      { B, T, H, KVH, D, scale, window },
    );
    dq.commit();
    dk.commit();
    dv.commit();
  });
  return out;
}
