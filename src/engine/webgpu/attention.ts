/**
 * Flash-style attention (the semantics are the spec's, src/engine/kernels/attention.ts):
 * scores are never materialised. These are the row kernels; the runner's attention plan
 * (attention-plan.ts, chosen by the tuner) may send a pass to the block-tiled kernels of
 * attention-tiled.ts instead (decode-shaped forwards always split keys here). Each workgroup owns a block of rows of one (batch, head), keeps
 * its own row vectors and accumulators in registers, and streams the other side's rows through
 * workgroup memory in tiles.
 *
 * - forward: one thread per query; online softmax over key tiles (running max / sum, rescaling the
 *   output accumulator whenever the max grows); writes out and lse. Decode-shaped calls (few query
 *   blocks, many keys) split the keys over workgroups instead (grid z), each writing its partial
 *   max, sum and unnormalised output to scratch, which a second kernel merges (flash decoding).
 * - backward: delta_i = dout_i . out_i first; then one thread per query accumulates dq over keys,
 *   and one thread per key accumulates dk and dv over the queries of every head in its GQA group,
 *   so no float atomics are needed and dk/dv are overwritten with the group's sum.
 *
 * Row vectors (q, k, v, dout and the accumulators) are held as D/4 vec4 registers, generated
 * unrolled, and tiles are vec4 arrays: a dot product is D/4 vec4 FMAs, and no per-thread array is
 * indexed dynamically (which GPUs and CPU adapters alike would keep in memory).
 *
 * Visibility of key j to query position p: j <= p, keyMask[b, j] != 0 and seg[b, j] == seg[b, p]
 * (each optional), and p - j < window in a sliding-window layer (window > 0). Scores use finite sentinels, never infinities.
 */
import { range, type KernelDef } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX } from './elementwise.ts';
import type { KernelRunner } from './runner.ts';
// EMPTY_ROW_LSE (+inf) is passed as a uniform, because WGSL rejects infinite constants.
import { ATTENTION, EMPTY_ROW_LSE } from '../kernels/attention.ts';
import type { GpuTable } from './kernel-table.ts';
import { attentionPlanOf } from './attention-plan.ts';
import {
  fitTiledShape,
  tiledDkdvKernel,
  tiledDqKernel,
  tiledForwardKernel,
  tiledMaskArgs,
  tiledWidth,
  type TiledKind,
  type TiledShape,
} from './attention-tiled.ts';
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
} from './attention-shared.ts';

/** vec4s per row of head dimension D (zero-padded past D). */
const vec4s = (D: number) => Math.ceil(D / 4);

/** WGSL declaring `var <name>0 .. <name>{D4-1}: vec4<f32>`, zeroed. */
const vecRegisters = (name: string, D: number) =>
  range(vec4s(D))
    .map((i) => `var ${name}${i} = vec4<f32>();`)
    .join(' ');

/** WGSL loading row `rowBase` (an element index) of `src` into registers `<name>i`, times `scale`. */
function loadRegisters(name: string, src: string, rowBase: string, D: number, scale = ''): string {
  return range(vec4s(D))
    .map((i) => {
      const lanes = range(4).map((l) =>
        i * 4 + l < D ? `${src}[P.${src}_off + ${rowBase} + ${i * 4 + l}u]` : '0.0',
      );
      return `${name}${i} = vec4<f32>(${lanes.join(', ')})${scale};`;
    })
    .join('\n    ');
}

/** WGSL storing registers `<name>i` times `factor` to row `rowBase` of `dst`. */
function storeRegisters(name: string, dst: string, rowBase: string, D: number, factor: string) {
  return range(D)
    .map(
      (e) => `${dst}[P.${dst}_off + ${rowBase} + ${e}u] = ${name}${e >> 2}[${e & 3}] * ${factor};`,
    )
    .join('\n    ');
}

/** WGSL expression: the dot product of registers `<name>i` with tile row `row` of `tile`. */
function dotTile(name: string, tile: string, row: string, D: number): string {
  return range(vec4s(D))
    .map((i) => `dot(${name}${i}, ${tile}[${row} * ${vec4s(D)}u + ${i}u])`)
    .join(' + ');
}

/** WGSL statements `<name>i = fma(vec4(weight), tile row, <name>i)` (with an optional rescale). */
function axpyTile(name: string, weight: string, tile: string, row: string, D: number): string {
  return range(vec4s(D))
    .map(
      (i) =>
        `${name}${i} = fma(vec4<f32>(${weight}), ${tile}[${row} * ${vec4s(D)}u + ${i}u], ${name}${i});`,
    )
    .join('\n          ');
}

/** WGSL loop that copies `rows` rows (from `first`) of buffer `src` into vec4 tile `dst` (zero past `limit`). */
function loadTile(
  dst: string,
  src: string,
  rowIndex: string,
  first: string,
  limit: string,
  rows: number,
  D: number,
) {
  const D4 = vec4s(D);
  return `
    for (var e = lid.x; e < ${rows * D4 * 4}u; e += ${ROWS_PER_WORKGROUP}u) {
      let r = ${first} + e / ${D4 * 4}u;
      let d = e % ${D4 * 4}u;
      var value = 0.0;
      if (r < ${limit} && d < ${D}u) { value = ${src}[P.${src}_off + (${rowIndex}) * ${D}u + d]; }
      ${dst}[e >> 2u][e & 3u] = value;
    }`;
}

/**
 * The forward over keys [keyBegin, keyEnd) of one query block. `split`: the keys are split over
 * grid z in chunks of `P.chunk`, and each workgroup writes its partial running max, running sum
 * and unnormalised output to `part` (see MERGE) instead of out and lse.
 */
function forwardKernel(D: number, m: Masking, split: boolean): KernelDef {
  const D4 = vec4s(D);
  const KT = tileRows(2 * D4 * 16);
  const finish = split
    ? `if (inRange) {
    // part: [splits, B*H*Tq, D + 2]: output accumulator, running max, running sum.
    let slot = ((wid.z * nwg.y + bh) * P.Tq + i) * ${D + 2}u;
    ${storeRegisters('acc', 'part', 'slot', D, '1.0')}
    part[P.part_off + slot + ${D}u] = runMax;
    part[P.part_off + slot + ${D + 1}u] = runSum;
  }`
    : `if (inRange) {
    var inv = 0.0;
    if (runSum > 0.0) { inv = 1.0 / runSum; }
    ${storeRegisters('acc', 'out', 'qRow', D, 'inv')}
    var rowLse = P.emptyRowLse;
    if (runSum > 0.0) { rowLse = runMax + log(runSum); }
    lse[P.lse_off + bh * P.Tq + i] = rowLse;
  }`;
  return {
    key: `attention-forward:${D}:${KT}:${maskKey(m)}${split ? ':split' : ''}`,
    params: { ...FORWARD_PARAMS, chunk: 'u32' },
    buffers: [
      { name: 'q', dtype: 'f32', access: 'read' },
      { name: 'k', dtype: 'f32', access: 'read' },
      { name: 'v', dtype: 'f32', access: 'read' },
      ...(split
        ? [{ name: 'part', dtype: 'f32' as const, access: 'read_write' as const }]
        : [
            { name: 'out', dtype: 'f32' as const, access: 'read_write' as const },
            { name: 'lse', dtype: 'f32' as const, access: 'read_write' as const },
          ]),
      ...maskBuffers(m),
    ],
    workgroupSize: [ROWS_PER_WORKGROUP],
    prelude: `
var<workgroup> kTile: array<vec4<f32>, ${KT * D4}>;
var<workgroup> vTile: array<vec4<f32>, ${KT * D4}>;
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
  ${vecRegisters('q', D)}
  ${vecRegisters('acc', D)}
  if (inRange) {
    ${loadRegisters('q', 'q', 'qRow', D, ' * P.scale')}
  }
  var runMax = -3.0e38;
  var runSum = 0.0;
  // Keys past the block's last query position are invisible to all of its queries.
  let lastQuery = min(wid.x * ${ROWS_PER_WORKGROUP}u + ${ROWS_PER_WORKGROUP}u, P.Tq) - 1u;
  let keyBegin = wid.z * P.chunk;
  let keyEnd = min(P.Tk - P.Tq + lastQuery + 1u, keyBegin + P.chunk);
  for (var j0 = keyBegin; j0 < keyEnd; j0 += ${KT}u) {
    ${loadTile('kTile', 'k', '(b * P.kvCap + r) * P.KVH + g', 'j0', 'keyEnd', KT, D)}
    ${loadTile('vTile', 'v', '(b * P.kvCap + r) * P.KVH + g', 'j0', 'keyEnd', KT, D)}
    workgroupBarrier();
    if (inRange) {
      for (var jj = 0u; jj < ${KT}u; jj++) {
        let j = j0 + jj;
        if (j >= keyEnd || !visible(b, p, j)) { continue; }
        let s = ${dotTile('q', 'kTile', 'jj', D)};
        if (s > runMax) {
          let correction = exp(runMax - s);
          runSum *= correction;
          ${range(D4)
            .map((d) => `acc${d} *= correction;`)
            .join(' ')}
          runMax = s;
        }
        let weight = exp(s - runMax);
        runSum += weight;
        ${axpyTile('acc', 'weight', 'vTile', 'jj', D)}
      }
    }
    workgroupBarrier();
  }
  ${finish}
`,
  };
}

/**
 * Merges the split forward's partials: with M the largest partial max, out = sum_s e^(m_s - M)
 * acc_s / sum_s e^(m_s - M) l_s and lse = M + log(that sum) (a query no split saw: 0 and +inf).
 */
function mergeKernel(D: number): KernelDef {
  return {
    key: `attention-forward-merge:${D}`,
    params: { rows: 'u32', Tq: 'u32', H: 'u32', splits: 'u32', emptyRowLse: 'f32' },
    buffers: [
      { name: 'part', dtype: 'f32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
      { name: 'lse', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    body: `
  ${FLAT_INDEX}
  if (i >= P.rows) { return; }
  // i enumerates [B, H, Tq] like lse; out is [B, Tq, H, D].
  let t = i % P.Tq;
  let bh = i / P.Tq;
  let outRow = ((bh / P.H * P.Tq + t) * P.H + bh % P.H) * ${D}u;
  var best = -3.0e38;
  for (var s = 0u; s < P.splits; s++) {
    let slot = (s * P.rows + i) * ${D + 2}u;
    if (part[P.part_off + slot + ${D + 1}u] > 0.0) { best = max(best, part[P.part_off + slot + ${D}u]); }
  }
  var total = 0.0;
  for (var s = 0u; s < P.splits; s++) {
    let slot = (s * P.rows + i) * ${D + 2}u;
    let sum = part[P.part_off + slot + ${D + 1}u];
    if (sum > 0.0) { total += exp(part[P.part_off + slot + ${D}u] - best) * sum; }
  }
  var inv = 0.0;
  if (total > 0.0) { inv = 1.0 / total; }
  for (var d = 0u; d < ${D}u; d++) {
    var value = 0.0;
    for (var s = 0u; s < P.splits; s++) {
      let slot = (s * P.rows + i) * ${D + 2}u;
      let sum = part[P.part_off + slot + ${D + 1}u];
      if (sum > 0.0) { value += exp(part[P.part_off + slot + ${D}u] - best) * part[P.part_off + slot + d]; }
    }
    out[P.out_off + outRow + d] = value * inv;
  }
  var rowLse = P.emptyRowLse;
  if (total > 0.0) { rowLse = best + log(total); }
  lse[P.lse_off + i] = rowLse;
`,
  };
}

function dqKernel(D: number, m: Masking): KernelDef {
  const D4 = vec4s(D);
  const KT = tileRows(2 * D4 * 16);
  return {
    key: `attention-backward-dq:${D}:${KT}:${maskKey(m)}`,
    params: { ...BACKWARD_PARAMS },
    buffers: backwardBuffers(m, ['dq']),
    workgroupSize: [ROWS_PER_WORKGROUP],
    prelude: `
var<workgroup> kTile: array<vec4<f32>, ${KT * D4}>;
var<workgroup> vTile: array<vec4<f32>, ${KT * D4}>;
${visibleFn(m)}`,
    body: `
  let bh = wid.y;
  let b = bh / P.H;
  let h = bh % P.H;
  let g = h / (P.H / P.KVH);
  let i = wid.x * ${ROWS_PER_WORKGROUP}u + lid.x;
  let inRange = i < P.T;
  let row = ((b * P.T + i) * P.H + h) * ${D}u;
  ${vecRegisters('q', D)}
  ${vecRegisters('do', D)}
  ${vecRegisters('dq', D)}
  var rowLse = 0.0;
  var rowDelta = 0.0;
  if (inRange) {
    ${loadRegisters('q', 'q', 'row', D, ' * P.scale')}
    ${loadRegisters('do', 'dout', 'row', D)}
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
        let s = ${dotTile('q', 'kTile', 'jj', D)};
        let dp = ${dotTile('do', 'vTile', 'jj', D)};
        let ds = exp(s - rowLse) * (dp - rowDelta);
        ${axpyTile('dq', 'ds', 'kTile', 'jj', D)}
      }
    }
    workgroupBarrier();
  }
  if (inRange) {
    ${storeRegisters('dq', 'dq', 'row', D, 'P.scale')}
  }
`,
  };
}

function dkdvKernel(D: number, m: Masking): KernelDef {
  const D4 = vec4s(D);
  // q and dout rows, plus one lse and one delta value per row.
  const QT = tileRows(2 * D4 * 16 + 8);
  return {
    key: `attention-backward-dkdv:${D}:${QT}:${maskKey(m)}`,
    params: { ...BACKWARD_PARAMS },
    buffers: backwardBuffers(m, ['dk', 'dv']),
    workgroupSize: [ROWS_PER_WORKGROUP],
    prelude: `
var<workgroup> qTile: array<vec4<f32>, ${QT * D4}>;
var<workgroup> doTile: array<vec4<f32>, ${QT * D4}>;
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
  ${vecRegisters('k', D)}
  ${vecRegisters('v', D)}
  ${vecRegisters('dk', D)}
  ${vecRegisters('dv', D)}
  if (inRange) {
    ${loadRegisters('k', 'k', 'row', D, ' * P.scale')}
    ${loadRegisters('v', 'v', 'row', D)}
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
          let s = ${dotTile('k', 'qTile', 'ii', D)};
          let dp = ${dotTile('v', 'doTile', 'ii', D)};
          let prob = exp(s - lseTile[ii]);
          let ds = prob * (dp - deltaTile[ii]);
          ${axpyTile('dv', 'prob', 'doTile', 'ii', D)}
          ${axpyTile('dk', 'ds', 'qTile', 'ii', D)}
        }
      }
      workgroupBarrier();
    }
  }
  if (inRange) {
    ${storeRegisters('dk', 'dk', 'row', D, 'P.scale')}
    ${storeRegisters('dv', 'dv', 'row', D, '1.0')}
  }
`,
  };
}

/** Split the keys when the queries alone give fewer workgroups than this (decode: one query per head)... */
const SPLIT_TARGET_GROUPS = 64;
/** ...into chunks of at least this many keys. */
const SPLIT_MIN_KEYS = 32;

/** Key splits for a forward of `groups` query workgroups over Tk keys (1: no split). */
function keySplits(groups: number, Tk: number, partBytes: number, runner: KernelRunner): number {
  return Math.max(
    1,
    Math.min(
      Math.ceil(SPLIT_TARGET_GROUPS / groups),
      Math.floor(Tk / SPLIT_MIN_KEYS),
      Math.floor(runner.maxBindingBytes / partBytes),
      runner.maxWorkgroupsPerDimension,
    ),
  );
}

/**
 * The tiled shape `runner`'s plan gives this kernel at head dimension D (its column blocks
 * narrowed to fit workgroup memory), or null: the row kernel runs.
 */
function tiledShape(runner: KernelRunner, kind: TiledKind, D: number): TiledShape | null {
  const plan = attentionPlanOf(runner);
  const kernels = kind === 'forward' ? plan.forward : plan.backward;
  if (kernels.kind === 'row') return null;
  return fitTiledShape(kind, D, kernels.shape, runner.device.limits.maxComputeWorkgroupStorageSize);
}

/** Rows (queries or keys) one workgroup of a backward kernel owns. */
const rowsPerWorkgroup = (shape: TiledShape | null) =>
  shape ? shape.rowGroups * shape.rowsPerThread : ROWS_PER_WORKGROUP;

export const attention: GpuTable<typeof ATTENTION> = {
  /**
   * q/out `[B,Tq,H,D]`; k/v `[B,kvCap,KVH,D]` with the first Tk rows valid; lse `[B,H,Tq]`;
   * query i sits at position Tk - Tq + i. keyMask/segIds i32 `[B,kvCap]` or null.
   */
  attentionForward: (
    { q, k, v, out, lse, keyMask, segIds },
    { B, Tq, Tk, kvCap, H, KVH, D, scale, window },
    runner,
  ) => {
    const masking = { keyMask: keyMask !== null, segIds: segIds !== null };
    const inputs = {
      q: { ref: q, elements: B * Tq * H * D },
      k: { ref: k, elements: B * kvCap * KVH * D },
      v: { ref: v, elements: B * kvCap * KVH * D },
      ...maskArgs(B, kvCap, keyMask, segIds),
    };
    const params = { Tq, Tk, kvCap, H, KVH, scale, emptyRowLse: EMPTY_ROW_LSE, window };
    const blocks = Math.ceil(Tq / ROWS_PER_WORKGROUP);
    const rows = B * H * Tq;
    const splits = keySplits(blocks * B * H, Tk, rows * (D + 2) * 4, runner);
    const outputs = {
      out: { ref: out, elements: B * Tq * H * D },
      lse: { ref: lse, elements: rows },
    };
    // The tiled kernels take every call with a full block of queries; decode-shaped calls (fewer
    // queries, keys worth splitting) take the split path below.
    const tiled =
      splits === 1 || Tq >= ROWS_PER_WORKGROUP ? tiledShape(runner, 'forward', D) : null;
    if (tiled) {
      const masks = tiledMaskArgs(runner, B, kvCap, keyMask, segIds);
      runner.dispatch(
        tiledForwardKernel(tiledWidth(D), tiled),
        { ...inputs, ...outputs, ...masks.buffers },
        { ...params, ...masks.params, D },
        [Math.ceil(Tq / (tiled.rowGroups * tiled.rowsPerThread)), B * H],
      );
      return;
    }
    if (splits === 1) {
      runner.dispatch(
        forwardKernel(D, masking, false),
        { ...inputs, ...outputs },
        { ...params, chunk: Tk },
        [blocks, B * H],
      );
      return;
    }
    const chunk = Math.ceil(Tk / splits);
    const part = {
      ref: runner.scratchBuffer('attention-split', splits * rows * (D + 2) * 4),
      elements: splits * rows * (D + 2),
    };
    runner.dispatch(forwardKernel(D, masking, true), { ...inputs, part }, { ...params, chunk }, [
      blocks,
      B * H,
      splits,
    ]);
    runner.dispatch(
      mergeKernel(D),
      { part, ...outputs },
      { rows, Tq, H, splits, emptyRowLse: EMPTY_ROW_LSE },
      runner.grid1d(Math.ceil(rows / ELEMENTWISE_WORKGROUP)),
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
    const delta = runner.scratchBuffer('attention-delta', B * H * T * 4);
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
    const masks = tiledMaskArgs(runner, B, T, keyMask, segIds);
    const tiledArgs = { buffers: masks.buffers, params: { ...params, ...masks.params, D } };
    const dqShape = tiledShape(runner, 'dq', D);
    const dkdvShape = tiledShape(runner, 'dkdv', D);
    const dqArgs = dqShape ? tiledArgs : { buffers: {}, params };
    runner.dispatch(
      dqShape ? tiledDqKernel(tiledWidth(D), dqShape) : dqKernel(D, masking),
      { ...inputs, ...dqArgs.buffers, dq: { ref: dq, elements: qElements } },
      dqArgs.params,
      [Math.ceil(T / rowsPerWorkgroup(dqShape)), B * H],
    );
    const dkdvArgs = dkdvShape ? tiledArgs : { buffers: {}, params };
    runner.dispatch(
      dkdvShape ? tiledDkdvKernel(tiledWidth(D), dkdvShape) : dkdvKernel(D, masking),
      {
        ...inputs,
        ...dkdvArgs.buffers,
        dk: { ref: dk, elements: kvElements },
        dv: { ref: dv, elements: kvElements },
      },
      dkdvArgs.params,
      [Math.ceil(T / rowsPerWorkgroup(dkdvShape)), B * KVH],
    );
  },
};
