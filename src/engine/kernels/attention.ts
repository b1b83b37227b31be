/**
 * Causal grouped-query attention, forward and flash-style backward.
 *
 * q / out [B, Tq, H, D]; k / v [B, kvCap, KVH, D] with the first Tk rows valid; query i sits at
 * absolute position Tk − Tq + i; lse [B, H, Tq] (log-sum-exp of the scaled scores, saved for the
 * backward; +∞ for a query that sees no key, whose output is 0). Query head h reads kv head
 * floor(h / (H / KVH)). Key j is visible to the query at position p iff j ≤ p, window = 0 or
 * p − j < window (sliding-window layers), keyMask (i32 [B, kvCap]) is absent or non-zero at j,
 * and segIds (i32 [B, kvCap], packing) is absent or equal at j and p.
 */
import { defineKernel, type SpecParams } from './spec.ts';

/** What a query with no visible key stores as its lse: makes exp(score − lse) = 0 everywhere. */
export const EMPTY_ROW_LSE = Infinity;

type Ints = Int32Array | null;

function keyVisible(
  b: number,
  j: number,
  p: number,
  kvCap: number,
  mask: Ints,
  seg: Ints,
  window: number,
) {
  if (j > p || (window > 0 && j <= p - window)) return false;
  if (mask && mask[b * kvCap + j] === 0) return false;
  if (seg && seg[b * kvCap + j] !== seg[b * kvCap + p]) return false;
  return true;
}

function dot(a: ArrayLike<number>, aOff: number, b: ArrayLike<number>, bOff: number, n: number) {
  let s = 0;
  for (let d = 0; d < n; d++) s += a[aOff + d]! * b[bOff + d]!;
  return s;
}

export const attentionForward = defineKernel({
  name: 'attentionForward',
  buffers: {
    q: { dtype: 'f32', access: 'read' },
    k: { dtype: 'f32', access: 'read' },
    v: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
    lse: { dtype: 'f32', access: 'write' },
    keyMask: { dtype: 'i32', access: 'read', optional: true },
    segIds: { dtype: 'i32', access: 'read', optional: true },
  },
  params: {
    B: 'u32',
    Tq: 'u32',
    Tk: 'u32',
    kvCap: 'u32',
    H: 'u32',
    KVH: 'u32',
    D: 'u32',
    scale: 'f32',
    window: 'u32',
  },
  reference(
    { q, k, v, out, lse, keyMask, segIds },
    { B, Tq, Tk, kvCap, H, KVH, D, scale, window },
  ) {
    const group = H / KVH;
    const scores = new Float64Array(Tk);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        for (let i = 0; i < Tq; i++) {
          const p = Tk - Tq + i;
          const qOff = ((b * Tq + i) * H + h) * D;
          let max = -Infinity;
          for (let j = 0; j < Tk; j++) {
            scores[j] = keyVisible(b, j, p, kvCap, keyMask, segIds, window)
              ? scale * dot(q, qOff, k, ((b * kvCap + j) * KVH + kvh) * D, D)
              : -Infinity;
            max = Math.max(max, scores[j]!);
          }
          out.fill(0, qOff, qOff + D);
          const lseIndex = (b * H + h) * Tq + i;
          if (max === -Infinity) {
            lse[lseIndex] = EMPTY_ROW_LSE;
            continue;
          }
          let sum = 0;
          for (let j = 0; j < Tk; j++) sum += Math.exp(scores[j]! - max);
          for (let j = 0; j < Tk; j++) {
            const prob = Math.exp(scores[j]! - max) / sum;
            if (prob === 0) continue;
            const vOff = ((b * kvCap + j) * KVH + kvh) * D;
            for (let d = 0; d < D; d++) out[qOff + d] = out[qOff + d]! + prob * v[vOff + d]!;
          }
          lse[lseIndex] = max + Math.log(sum);
        }
      }
    }
  },
});

/**
 * The backward from the saved lse (training layout: Tq = Tk = kvCap = T): P = exp(S − lse),
 * Δ = rowsum(dout · out), dS = P · (dP − Δ). dq, dk, dv are overwritten; the query heads sharing
 * a kv head sum into its dk / dv.
 */
export const attentionBackward = defineKernel({
  name: 'attentionBackward',
  buffers: {
    q: { dtype: 'f32', access: 'read' },
    k: { dtype: 'f32', access: 'read' },
    v: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'read' },
    lse: { dtype: 'f32', access: 'read' },
    dout: { dtype: 'f32', access: 'read' },
    dq: { dtype: 'f32', access: 'write' },
    dk: { dtype: 'f32', access: 'write' },
    dv: { dtype: 'f32', access: 'write' },
    keyMask: { dtype: 'i32', access: 'read', optional: true },
    segIds: { dtype: 'i32', access: 'read', optional: true },
  },
  params: { B: 'u32', T: 'u32', H: 'u32', KVH: 'u32', D: 'u32', scale: 'f32', window: 'u32' },
  reference(
    { q, k, v, out, lse, dout, dq, dk, dv, keyMask, segIds },
    { B, T, H, KVH, D, scale, window },
  ) {
    const group = H / KVH;
    dq.fill(0, 0, B * T * H * D);
    dk.fill(0, 0, B * T * KVH * D);
    dv.fill(0, 0, B * T * KVH * D);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        for (let i = 0; i < T; i++) {
          const qOff = ((b * T + i) * H + h) * D;
          const rowLse = lse[(b * H + h) * T + i]!;
          const rowDelta = dot(dout, qOff, out, qOff, D);
          for (let j = 0; j <= i; j++) {
            if (!keyVisible(b, j, i, T, keyMask, segIds, window)) continue;
            const kvOff = ((b * T + j) * KVH + kvh) * D;
            const prob = Math.exp(scale * dot(q, qOff, k, kvOff, D) - rowLse);
            const dScore = prob * (dot(dout, qOff, v, kvOff, D) - rowDelta);
            for (let d = 0; d < D; d++) {
              dq[qOff + d] = dq[qOff + d]! + scale * dScore * k[kvOff + d]!;
              dk[kvOff + d] = dk[kvOff + d]! + scale * dScore * q[qOff + d]!;
              dv[kvOff + d] = dv[kvOff + d]! + prob * dout[qOff + d]!;
            }
          }
        }
      }
    }
  },
});

/** The scalars of an attention forward: dimensions, score scale, sliding window (0: none). */
export type AttentionParams = SpecParams<typeof attentionForward>;

export const ATTENTION = { attentionForward, attentionBackward } as const;
