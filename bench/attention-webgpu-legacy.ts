/**
 * The first WebGPU attention kernels (one scalar per-thread array per row vector, scalar tiles,
 * no key split for decode), kept as the baseline that `bench:ops -- --device webgpu` times the
 * current kernels (src/engine/webgpu/attention.ts) against. Semantics are the spec's (src/engine/kernels/attention.ts):
 * scores are never materialised. Each workgroup owns a block of rows of one (batch, head), keeps
 * its own row vectors and accumulators in registers, and streams the other side's rows through
 * workgroup memory in tiles.
 *
 * - forward: one thread per query; online softmax over key tiles (running max / sum, rescaling the
 *   output accumulator whenever the max grows); writes out and lse.
 * - backward: delta_i = dout_i . out_i first; then one thread per query accumulates dq over keys,
 *   and one thread per key accumulates dk and dv over the queries of every head in its GQA group,
 *   so no float atomics are needed and dk/dv are overwritten with the group's sum.
 *
 * Visibility of key j to query position p: j <= p, keyMask[b, j] != 0 and seg[b, j] == seg[b, p]
 * (each optional), and p - j < window in a sliding-window layer (window > 0). Scores use finite sentinels, never infinities.
 */
import type { KernelDef } from '../src/engine/webgpu/kernel-def.ts';
import { ELEMENTWISE_WORKGROUP } from '../src/engine/webgpu/elementwise.ts';
// EMPTY_ROW_LSE (+inf) is passed as a uniform, because WGSL rejects infinite constants.
import { ATTENTION, EMPTY_ROW_LSE } from '../src/engine/kernels/attention.ts';
import type { GpuTable } from '../src/engine/webgpu/kernel-table.ts';
import {
  backwardBuffers,
  BACKWARD_PARAMS,
  FORWARD_PARAMS,
  DELTA,
  maskArgs,
  maskBuffers,
  maskKey,
  tileRows,
  visibleFn,
  ROWS_PER_WORKGROUP,
  type Masking,
} from '../src/engine/webgpu/attention-shared.ts';

/** WGSL loop that copies `rows` rows (from `first`) of buffer `src` into tile `dst` (zero past `limit`). */
function loadTile(
  dst: string,
  src: string,
  rowIndex: string,
  first: string,
  limit: string,
  rows: number,
  D: number,
) {
  return `
    for (var e = lid.x; e < ${rows * D}u; e += ${ROWS_PER_WORKGROUP}u) {
      let r = ${first} + e / ${D}u;
      var value = 0.0;
      if (r < ${limit}) { value = ${src}[P.${src}_off + (${rowIndex}) * ${D}u + e % ${D}u]; }
      ${dst}[e] = value;
    }`;
}

function forwardKernel(D: number, m: Masking): KernelDef {
  const KT = tileRows(2 * D * 4);
  return {
    key: `legacy-attention-forward:${D}:${KT}:${maskKey(m)}`,
    params: FORWARD_PARAMS,
    buffers: [
      { name: 'q', dtype: 'f32', access: 'read' },
      { name: 'k', dtype: 'f32', access: 'read' },
      { name: 'v', dtype: 'f32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
      { name: 'lse', dtype: 'f32', access: 'read_write' },
      ...maskBuffers(m),
    ],
    workgroupSize: [ROWS_PER_WORKGROUP],
    prelude: `
var<workgroup> kTile: array<f32, ${KT * D}>;
var<workgroup> vTile: array<f32, ${KT * D}>;
${visibleFn(m)}`,
    body: `
  let bh = wid.y;
  let b = bh / P.H;
  let h = bh % P.H;
  let g = h / (P.H / P.KVH);
  let i = wid.x * ${ROWS_PER_WORKGROUP}u + lid.x;
  let inRange = i < P.Tq;
  let p = P.Tk - P.Tq + i;
  let qRow = ((b * P.Tq + i) * P.H + h) * ${D}u;
  var qv: array<f32, ${D}>;
  var acc: array<f32, ${D}>;
  if (inRange) {
    for (var d = 0u; d < ${D}u; d++) { qv[d] = q[P.q_off + qRow + d] * P.scale; }
  }
  var runMax = -3.0e38;
  var runSum = 0.0;
  // Keys past the block's last query position are invisible to all of its queries.
  let lastQuery = min(wid.x * ${ROWS_PER_WORKGROUP}u + ${ROWS_PER_WORKGROUP}u, P.Tq) - 1u;
  let keyEnd = P.Tk - P.Tq + lastQuery + 1u;
  for (var j0 = 0u; j0 < keyEnd; j0 += ${KT}u) {
    ${loadTile('kTile', 'k', '(b * P.kvCap + r) * P.KVH + g', 'j0', 'keyEnd', KT, D)}
    ${loadTile('vTile', 'v', '(b * P.kvCap + r) * P.KVH + g', 'j0', 'keyEnd', KT, D)}
    workgroupBarrier();
    if (inRange) {
      for (var jj = 0u; jj < ${KT}u; jj++) {
        let j = j0 + jj;
        if (j >= keyEnd || !visible(b, p, j)) { continue; }
        var s = 0.0;
        for (var d = 0u; d < ${D}u; d++) { s = fma(qv[d], kTile[jj * ${D}u + d], s); }
        if (s > runMax) {
          let correction = exp(runMax - s);
          runSum *= correction;
          for (var d = 0u; d < ${D}u; d++) { acc[d] *= correction; }
          runMax = s;
        }
        let weight = exp(s - runMax);
        runSum += weight;
        for (var d = 0u; d < ${D}u; d++) { acc[d] = fma(weight, vTile[jj * ${D}u + d], acc[d]); }
      }
    }
    workgroupBarrier();
  }
  if (inRange) {
    var inv = 0.0;
    if (runSum > 0.0) { inv = 1.0 / runSum; }
    for (var d = 0u; d < ${D}u; d++) { out[P.out_off + qRow + d] = acc[d] * inv; }
    var rowLse = P.emptyRowLse;
    if (runSum > 0.0) { rowLse = runMax + log(runSum); }
    lse[P.lse_off + (b * P.H + h) * P.Tq + i] = rowLse;
  }
`,
  };
}

function dqKernel(D: number, m: Masking): KernelDef {
  const KT = tileRows(2 * D * 4);
  return {
    key: `legacy-attention-backward-dq:${D}:${KT}:${maskKey(m)}`,
    params: { ...BACKWARD_PARAMS },
    buffers: backwardBuffers(m, ['dq']),
    workgroupSize: [ROWS_PER_WORKGROUP],
    prelude: `
var<workgroup> kTile: array<f32, ${KT * D}>;
var<workgroup> vTile: array<f32, ${KT * D}>;
${visibleFn(m)}`,
    body: `
  let bh = wid.y;
  let b = bh / P.H;
  let h = bh % P.H;
  let g = h / (P.H / P.KVH);
  let i = wid.x * ${ROWS_PER_WORKGROUP}u + lid.x;
  let inRange = i < P.T;
  let row = ((b * P.T + i) * P.H + h) * ${D}u;
  var qv: array<f32, ${D}>;
  var dov: array<f32, ${D}>;
  var dqv: array<f32, ${D}>;
  var rowLse = 0.0;
  var rowDelta = 0.0;
  if (inRange) {
    for (var d = 0u; d < ${D}u; d++) {
      qv[d] = q[P.q_off + row + d] * P.scale;
      dov[d] = dout[P.dout_off + row + d];
    }
    rowLse = lse[P.lse_off + bh * P.T + i];
    rowDelta = delta[P.delta_off + bh * P.T + i];
  }
  let keyEnd = min(wid.x * ${ROWS_PER_WORKGROUP}u + ${ROWS_PER_WORKGROUP}u, P.T);
  for (var j0 = 0u; j0 < keyEnd; j0 += ${KT}u) {
    ${loadTile('kTile', 'k', '(b * P.kvCap + r) * P.KVH + g', 'j0', 'keyEnd', KT, D)}
    ${loadTile('vTile', 'v', '(b * P.kvCap + r) * P.KVH + g', 'j0', 'keyEnd', KT, D)}
    workgroupBarrier();
    if (inRange) {
      for (var jj = 0u; jj < ${KT}u; jj++) {
        let j = j0 + jj;
        if (j >= keyEnd || !visible(b, i, j)) { continue; }
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < ${D}u; d++) {
          s = fma(qv[d], kTile[jj * ${D}u + d], s);
          dp = fma(dov[d], vTile[jj * ${D}u + d], dp);
        }
        let ds = exp(s - rowLse) * (dp - rowDelta);
        for (var d = 0u; d < ${D}u; d++) { dqv[d] = fma(ds, kTile[jj * ${D}u + d], dqv[d]); }
      }
    }
    workgroupBarrier();
  }
  if (inRange) {
    for (var d = 0u; d < ${D}u; d++) { dq[P.dq_off + row + d] = dqv[d] * P.scale; }
  }
`,
  };
}

function dkdvKernel(D: number, m: Masking): KernelDef {
  // q and dout rows, plus one lse and one delta value per row.
  const QT = tileRows(2 * D * 4 + 8);
  return {
    key: `legacy-attention-backward-dkdv:${D}:${QT}:${maskKey(m)}`,
    params: { ...BACKWARD_PARAMS },
    buffers: backwardBuffers(m, ['dk', 'dv']),
    workgroupSize: [ROWS_PER_WORKGROUP],
    prelude: `
var<workgroup> qTile: array<f32, ${QT * D}>;
var<workgroup> doTile: array<f32, ${QT * D}>;
var<workgroup> lseTile: array<f32, ${QT}>;
var<workgroup> deltaTile: array<f32, ${QT}>;
${visibleFn(m)}`,
    body: `
  let bg = wid.y;
  let b = bg / P.KVH;
  let g = bg % P.KVH;
  let group = P.H / P.KVH;
  let j = wid.x * ${ROWS_PER_WORKGROUP}u + lid.x;
  let inRange = j < P.T;
  let row = ((b * P.kvCap + j) * P.KVH + g) * ${D}u;
  var kv: array<f32, ${D}>;
  var vv: array<f32, ${D}>;
  var dkv: array<f32, ${D}>;
  var dvv: array<f32, ${D}>;
  if (inRange) {
    for (var d = 0u; d < ${D}u; d++) {
      kv[d] = k[P.k_off + row + d] * P.scale;
      vv[d] = v[P.v_off + row + d];
    }
  }
  // Queries before the block's first key see none of its keys.
  let queryStart = wid.x * ${ROWS_PER_WORKGROUP}u;
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let bh = b * P.H + h;
    for (var i0 = queryStart; i0 < P.T; i0 += ${QT}u) {
      ${loadTile('qTile', 'q', '(b * P.T + r) * P.H + h', 'i0', 'P.T', QT, D)}
      ${loadTile('doTile', 'dout', '(b * P.T + r) * P.H + h', 'i0', 'P.T', QT, D)}
      if (lid.x < ${QT}u && i0 + lid.x < P.T) {
        lseTile[lid.x] = lse[P.lse_off + bh * P.T + i0 + lid.x];
        deltaTile[lid.x] = delta[P.delta_off + bh * P.T + i0 + lid.x];
      }
      workgroupBarrier();
      if (inRange) {
        for (var ii = 0u; ii < ${QT}u; ii++) {
          let i = i0 + ii;
          if (i >= P.T || !visible(b, i, j)) { continue; }
          var s = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < ${D}u; d++) {
            s = fma(kv[d], qTile[ii * ${D}u + d], s);
            dp = fma(vv[d], doTile[ii * ${D}u + d], dp);
          }
          let prob = exp(s - lseTile[ii]);
          let ds = prob * (dp - deltaTile[ii]);
          for (var d = 0u; d < ${D}u; d++) {
            dvv[d] = fma(prob, doTile[ii * ${D}u + d], dvv[d]);
            dkv[d] = fma(ds, qTile[ii * ${D}u + d], dkv[d]);
          }
        }
      }
      workgroupBarrier();
    }
  }
  if (inRange) {
    for (var d = 0u; d < ${D}u; d++) {
      dk[P.dk_off + row + d] = dkv[d] * P.scale;
      dv[P.dv_off + row + d] = dvv[d];
    }
  }
`,
  };
}

export const legacyAttention: GpuTable<typeof ATTENTION> = {
  /**
   * q/out `[B,Tq,H,D]`; k/v `[B,kvCap,KVH,D]` with the first Tk rows valid; lse `[B,H,Tq]`;
   * query i sits at position Tk - Tq + i. keyMask/segIds i32 `[B,kvCap]` or null.
   */
  attentionForward: (
    { q, k, v, out, lse, keyMask, segIds },
    { B, Tq, Tk, kvCap, H, KVH, D, scale, window },
    runner,
  ) => {
    const def = forwardKernel(D, { keyMask: keyMask !== null, segIds: segIds !== null });
    runner.dispatch(
      def,
      {
        q: { ref: q, elements: B * Tq * H * D },
        k: { ref: k, elements: B * kvCap * KVH * D },
        v: { ref: v, elements: B * kvCap * KVH * D },
        out: { ref: out, elements: B * Tq * H * D },
        lse: { ref: lse, elements: B * H * Tq },
        ...maskArgs(B, kvCap, keyMask, segIds),
      },
      { Tq, Tk, kvCap, H, KVH, scale, emptyRowLse: EMPTY_ROW_LSE, window },
      [Math.ceil(Tq / ROWS_PER_WORKGROUP), B * H],
    );
  },
  /** Training shapes (Tq = Tk = kvCap = T); dq, dk, dv are overwritten (dk/dv summed over each GQA group). */
  attentionBackward: (
    { q, k, v, out, lse, dout, dq, dk, dv, keyMask, segIds },
    { B, T, H, KVH, D, scale, window },
    runner,
  ) => {
    const qElements = B * T * H * D;
    const kvElements = B * T * KVH * D;
    const delta = runner.scratchBuffer('legacy-attention-delta', B * H * T * 4);
    runner.dispatch(
      DELTA,
      {
        out: { ref: out, elements: qElements },
        dout: { ref: dout, elements: qElements },
        delta: { ref: delta, elements: B * H * T },
      },
      { rows: B * T * H, T, H, D },
      runner.grid1d(Math.ceil((B * T * H) / ELEMENTWISE_WORKGROUP)),
    );
    const masking = { keyMask: keyMask !== null, segIds: segIds !== null };
    const inputs = {
      q: { ref: q, elements: qElements },
      k: { ref: k, elements: kvElements },
      v: { ref: v, elements: kvElements },
      dout: { ref: dout, elements: qElements },
      lse: { ref: lse, elements: B * H * T },
      delta: { ref: delta, elements: B * H * T },
      ...maskArgs(B, T, keyMask, segIds),
    };
    const params = { T, kvCap: T, H, KVH, scale, window };
    const blocks = Math.ceil(T / ROWS_PER_WORKGROUP);
    runner.dispatch(
      dqKernel(D, masking),
      { ...inputs, dq: { ref: dq, elements: qElements } },
      params,
      [blocks, B * H],
    );
    runner.dispatch(
      dkdvKernel(D, masking),
      { ...inputs, dk: { ref: dk, elements: kvElements }, dv: { ref: dv, elements: kvElements } },
      params,
      [blocks, B * KVH],
    );
  },
};
