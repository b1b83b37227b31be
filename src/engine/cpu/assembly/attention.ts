// Causal grouped-query attention, forward and flash-style backward (src/engine/kernels/attention.ts).
import { dot4, dot, accumulate4, axpyRow, fillZero, scaleInPlace } from './lib/rows';
import { expv, expf, lnF64 } from './lib/math';
import { at, splat, madd, lanes, hsum, hmax, hsum4 } from './lib/simd';

/** Next key >= j visible to the query at `pos` (keys <= pos, unmasked, same segment), or pos+1. */
@inline function nextVisibleKey(j: i32, pos: i32, maskRow: usize, segRow: usize, querySeg: i32): i32 {
  while (j <= pos) {
    const unmasked = maskRow == 0 || load<i32>(at(maskRow, j)) != 0;
    if (unmasked && (segRow == 0 || load<i32>(at(segRow, j)) == querySeg)) return j;
    j++;
  }
  return pos + 1;
}

/** The first key a query at `pos` may see: 0, or pos − window + 1 in a sliding-window layer. */
@inline function firstKey(pos: i32, window: i32): i32 {
  return window > 0 ? max(0, pos - window + 1) : 0;
}

/**
 * Causal grouped-query attention, flash style: one query at a time with an online softmax over
 * blocks of four visible keys, accumulating into its `out` row. A short last block repeats its
 * first key in the missing lanes with the score forced to -inf (probability 0), which keeps every
 * read inside valid rows. Work items: b * H + h.
 */
export function attentionForward(
  q: usize, k: usize, v: usize, out: usize, lse: usize, keyMask: usize, segIds: usize,
  B: i32, Tq: i32, Tk: i32, kvCap: i32, H: i32, KVH: i32, D: i32, scale: f32, window: i32,
  start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  for (let job = start; job < end; job++) {
    const b = job / H;
    const h = job % H;
    const kHead = at(k, (b * kvCap * KVH + h / group) * D);
    const vHead = at(v, (b * kvCap * KVH + h / group) * D);
    const maskRow = keyMask ? at(keyMask, b * kvCap) : 0;
    const segRow = segIds ? at(segIds, b * kvCap) : 0;
    for (let i = 0; i < Tq; i++) {
      const pos = Tk - Tq + i;
      const querySeg = segRow ? load<i32>(at(segRow, pos)) : 0;
      const qRow = at(q, ((b * Tq + i) * H + h) * D);
      const oRow = at(out, ((b * Tq + i) * H + h) * D);
      fillZero(oRow, D);
      let runMax: f32 = -Infinity;
      let runSum: f32 = 0;
      let j0 = nextVisibleKey(firstKey(pos, window), pos, maskRow, segRow, querySeg);
      while (j0 <= pos) {
        const j1 = nextVisibleKey(j0 + 1, pos, maskRow, segRow, querySeg);
        const j2 = nextVisibleKey(j1 + 1, pos, maskRow, segRow, querySeg);
        const j3 = nextVisibleKey(j2 + 1, pos, maskRow, segRow, querySeg);
        const k0 = kHead + <usize>j0 * keyStride;
        const k1 = j1 <= pos ? kHead + <usize>j1 * keyStride : k0;
        const k2 = j2 <= pos ? kHead + <usize>j2 * keyStride : k0;
        const k3 = j3 <= pos ? kHead + <usize>j3 * keyStride : k0;
        let scores = f32x4.mul(dot4(qRow, k0, k1, k2, k3, D), splat(scale));
        if (j1 > pos) scores = f32x4.replace_lane(scores, 1, -Infinity);
        if (j2 > pos) scores = f32x4.replace_lane(scores, 2, -Infinity);
        if (j3 > pos) scores = f32x4.replace_lane(scores, 3, -Infinity);
        const blockMax = hmax(scores);
        if (blockMax > runMax) {
          const correction = expf(runMax - blockMax);
          runSum *= correction;
          scaleInPlace(oRow, correction, D);
          runMax = blockMax;
        }
        const probs = expv(f32x4.sub(scores, splat(runMax)));
        runSum += hsum(probs);
        const v0 = vHead + (k0 - kHead);
        accumulate4(oRow, probs, v0, vHead + (k1 - kHead), vHead + (k2 - kHead), vHead + (k3 - kHead), D);
        j0 = nextVisibleKey(j3 + 1, pos, maskRow, segRow, querySeg);
      }
      const lseAt = at(lse, (b * H + h) * Tq + i);
      if (runSum == 0) {
        store<f32>(lseAt, Infinity); // no visible key: zero output, and exp(s - lse) = 0 backward
        continue;
      }
      scaleInPlace(oRow, 1 / runSum, D);
      store<f32>(lseAt, runMax + <f32>lnF64(<f64>runSum));
    }
  }
}

/**
 * Backward of one query row over its visible keys in [first, last]: recomputes P = exp(S - lse),
 * dS = P * (dP - delta) with dP = dout . v, then adds dS * k into dqRow and dS * q, P * dout into
 * the key rows of dkHead / dvHead. A 0 dqRow or dkHead skips that half. Blocks of four visible
 * keys, padded as in attentionForward (padded lanes have P = dS = 0 and update nothing).
 */
function backwardRow(
  qRow: usize, doRow: usize, dqRow: usize, rowLse: f32, rowDelta: f32,
  kHead: usize, vHead: usize, dkHead: usize, dvHead: usize, keyStride: usize,
  first: i32, last: i32, maskRow: usize, segRow: usize, querySeg: i32, D: i32, scale: f32,
): void {
  let j0 = nextVisibleKey(first, last, maskRow, segRow, querySeg);
  while (j0 <= last) {
    const j1 = nextVisibleKey(j0 + 1, last, maskRow, segRow, querySeg);
    const j2 = nextVisibleKey(j1 + 1, last, maskRow, segRow, querySeg);
    const j3 = nextVisibleKey(j2 + 1, last, maskRow, segRow, querySeg);
    const o0 = <usize>j0 * keyStride;
    const o1 = j1 <= last ? <usize>j1 * keyStride : o0;
    const o2 = j2 <= last ? <usize>j2 * keyStride : o0;
    const o3 = j3 <= last ? <usize>j3 * keyStride : o0;
    let scores = f32x4.mul(dot4(qRow, kHead + o0, kHead + o1, kHead + o2, kHead + o3, D), splat(scale));
    if (j1 > last) scores = f32x4.replace_lane(scores, 1, -Infinity);
    if (j2 > last) scores = f32x4.replace_lane(scores, 2, -Infinity);
    if (j3 > last) scores = f32x4.replace_lane(scores, 3, -Infinity);
    const probs = expv(f32x4.sub(scores, splat(rowLse)));
    const dProbs = dot4(doRow, vHead + o0, vHead + o1, vHead + o2, vHead + o3, D);
    const dScores = f32x4.mul(f32x4.mul(probs, f32x4.sub(dProbs, splat(rowDelta))), splat(scale));
    if (dqRow) accumulate4(dqRow, dScores, kHead + o0, kHead + o1, kHead + o2, kHead + o3, D);
    if (dkHead) {
      axpyRow(dkHead + o0, f32x4.extract_lane(dScores, 0), qRow, D);
      axpyRow(dvHead + o0, f32x4.extract_lane(probs, 0), doRow, D);
      if (j1 <= last) {
        axpyRow(dkHead + o1, f32x4.extract_lane(dScores, 1), qRow, D);
        axpyRow(dvHead + o1, f32x4.extract_lane(probs, 1), doRow, D);
      }
      if (j2 <= last) {
        axpyRow(dkHead + o2, f32x4.extract_lane(dScores, 2), qRow, D);
        axpyRow(dvHead + o2, f32x4.extract_lane(probs, 2), doRow, D);
      }
      if (j3 <= last) {
        axpyRow(dkHead + o3, f32x4.extract_lane(dScores, 3), qRow, D);
        axpyRow(dvHead + o3, f32x4.extract_lane(probs, 3), doRow, D);
      }
    }
    j0 = nextVisibleKey(j3 + 1, last, maskRow, segRow, querySeg);
  }
}

/** Zeroes rows [first, last] of one kv head's dk and dv. */
function zeroKeyRows(dkHead: usize, dvHead: usize, keyStride: usize, first: i32, last: i32, D: i32): void {
  for (let j = first; j <= last; j++) {
    fillZero(dkHead + <usize>j * keyStride, D);
    fillZero(dvHead + <usize>j * keyStride, D);
  }
}

/**
 * Flash backward (Tq = Tk = kvCap = T), dq, dk, dv overwritten. Work items: b * KVH + kvh; each
 * owns the dk / dv rows of its kv head and the dq rows of the query heads reading it, so jobs
 * never share an output. The cheapest form when there are at least a few such pairs per thread.
 */
export function attentionBackward(
  q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize,
  dq: usize, dk: usize, dv: usize, keyMask: usize, segIds: usize,
  B: i32, T: i32, H: i32, KVH: i32, D: i32, scale: f32, window: i32, start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  for (let job = start; job < end; job++) {
    const b = job / KVH;
    const kvh = job % KVH;
    const headOffset = <usize>((b * T * KVH + kvh) * D) << 2;
    zeroKeyRows(dk + headOffset, dv + headOffset, keyStride, 0, T - 1, D);
    const maskRow = keyMask ? at(keyMask, b * T) : 0;
    const segRow = segIds ? at(segIds, b * T) : 0;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      for (let i = 0; i < T; i++) {
        const rowOffset = <usize>(((b * T + i) * H + h) * D) << 2;
        fillZero(dq + rowOffset, D);
        backwardRow(
          q + rowOffset, dout + rowOffset, dq + rowOffset,
          load<f32>(at(lse, (b * H + h) * T + i)), dot(dout + rowOffset, out + rowOffset, D),
          k + headOffset, v + headOffset, dk + headOffset, dv + headOffset, keyStride,
          firstKey(i, window), i, maskRow, segRow, segRow ? load<i32>(at(segRow, i)) : 0, D, scale,
        );
      }
    }
  }
}

/**
 * dq half of the split backward (with attentionBackwardKeyValue), for when there are too few
 * (b, kv head) pairs to keep every thread busy. Work items: b * H + h.
 */
export function attentionBackwardQuery(
  q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize, dq: usize,
  keyMask: usize, segIds: usize,
  B: i32, T: i32, H: i32, KVH: i32, D: i32, scale: f32, window: i32, start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  for (let job = start; job < end; job++) {
    const b = job / H;
    const h = job % H;
    const headOffset = <usize>((b * T * KVH + h / group) * D) << 2;
    const maskRow = keyMask ? at(keyMask, b * T) : 0;
    const segRow = segIds ? at(segIds, b * T) : 0;
    for (let i = 0; i < T; i++) {
      const rowOffset = <usize>(((b * T + i) * H + h) * D) << 2;
      fillZero(dq + rowOffset, D);
      backwardRow(
        q + rowOffset, dout + rowOffset, dq + rowOffset,
        load<f32>(at(lse, (b * H + h) * T + i)), dot(dout + rowOffset, out + rowOffset, D),
        k + headOffset, v + headOffset, 0, 0, keyStride,
        firstKey(i, window), i, maskRow, segRow, segRow ? load<i32>(at(segRow, i)) : 0, D, scale,
      );
    }
  }
}

/**
 * dk / dv half of the split backward: each work item owns `keyBlock` key rows of one kv head and
 * walks the queries that can see them (recomputing each query's rowsum(dout * out) once per
 * block). Work items: (b * KVH + kvh) * ceil(T / keyBlock) + block.
 */
export function attentionBackwardKeyValue(
  q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize, dk: usize, dv: usize,
  keyMask: usize, segIds: usize,
  B: i32, T: i32, H: i32, KVH: i32, D: i32, scale: f32, window: i32, keyBlock: i32,
  start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  const blocks = (T + keyBlock - 1) / keyBlock;
  for (let job = start; job < end; job++) {
    const b = job / (KVH * blocks);
    const kvh = (job / blocks) % KVH;
    const first = (job % blocks) * keyBlock;
    const last = min(T, first + keyBlock) - 1;
    const headOffset = <usize>((b * T * KVH + kvh) * D) << 2;
    zeroKeyRows(dk + headOffset, dv + headOffset, keyStride, first, last, D);
    const maskRow = keyMask ? at(keyMask, b * T) : 0;
    const segRow = segIds ? at(segIds, b * T) : 0;
    // With a window, queries past last + window − 1 see none of this block's keys.
    const lastQuery = window > 0 ? min(T, last + window) : T;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      for (let i = first; i < lastQuery; i++) {
        const rowOffset = <usize>(((b * T + i) * H + h) * D) << 2;
        backwardRow(
          q + rowOffset, dout + rowOffset, 0,
          load<f32>(at(lse, (b * H + h) * T + i)), dot(dout + rowOffset, out + rowOffset, D),
          k + headOffset, v + headOffset, dk + headOffset, dv + headOffset, keyStride,
          max(first, firstKey(i, window)), min(i, last), maskRow, segRow, segRow ? load<i32>(at(segRow, i)) : 0, D, scale,
        );
      }
    }
  }
}
