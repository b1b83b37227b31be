/**
 * Block-tiled flash attention (the semantics are the spec's, src/engine/kernels/attention.ts):
 * the second implementation beside the row kernels of attention.ts, chosen per adapter
 * (attention-plan.ts).
 *
 * A workgroup owns a block of "rows" of one (batch, head) — queries in the forward and the dq
 * kernel, keys of one kv head in the dk/dv kernel — and streams blocks of "columns" (the other
 * side) through workgroup memory. Its invocations form `rowGroups` groups of 8 lanes; the lanes of
 * a group share `rowsPerThread` rows, and lane c owns the columns c, c + 8, ... of a column block
 * (`colsPerThread` of them), so each invocation computes a rowsPerThread x colsPerThread block of
 * the score tile in registers: every row value it reads serves colsPerThread scores, every column
 * value rowsPerThread. The weights of a block (probabilities, dS) are then shared with the other
 * lanes of the group, and each lane accumulates the vec4 chunks c, c + 8, ... (dimensions
 * 4c .. 4c + 3, ...) of the group's rows' outputs (weights x column vectors, e.g. P.V).
 *
 * - forward: online softmax over the key blocks; the block maximum of a row is reduced over its
 *   8 lanes, each lane keeps the running sum of its own columns and the sums are added at the end;
 *   out and lse are written.
 * - dq: S and dP = dO.V per block, dS = P (dP - delta), dq += dS.K.
 * - dk/dv: rows are keys; the column blocks are queries of every head of the key's GQA group in
 *   turn (no float atomics: dk/dv are overwritten with the group's sum); dv += P^T.dO,
 *   dk += dS^T.Q.
 * Blocks that the causal mask or the sliding window hide from every row are never visited.
 *
 * Two flavours of the same kernels:
 * - staged (any adapter): the rows' vectors (q, dO / k, v) sit in workgroup memory, read by the
 *   8 lanes of a group at one address (a broadcast read on a GPU); weights and the row reductions
 *   go through workgroup memory; column tiles have an odd row stride (fewer bank conflicts). Its
 *   loops over dimensions and columns are loops.
 * - `.s8` (adapters whose subgroups are exactly 8 lanes, such as lavapipe): a group is one
 *   subgroup. Row vectors are held in registers spread over the lanes (lane c keeps the chunks it
 *   owns) and handed out by subgroupBroadcast; weights are shared and rows reduced by subgroup
 *   operations, so only the column tiles use workgroup memory. On lavapipe every load inside a
 *   loop is a per-lane scalar loop, and a broadcast is two instructions: this is where the tiled
 *   kernel gains there. Broadcasts take constant lanes, so these loops are unrolled, which costs
 *   shader compile time (lavapipe: ~15 s for a forward, ~3 min for a backward at D 64, once per
 *   machine: Mesa caches them; hence MAX_S8_HEAD_DIM). It assumes that the 8 invocations of a group
 *   (consecutive local indices) form one subgroup, as adapters with one fixed subgroup size do.
 *
 * Rows past the end are clamped for loading and not stored, columns past the end are zeroed in
 * the tiles and masked. Masked scores are a finite sentinel, never infinities; masked keys'
 * values are multiplied by a zero weight, so they must be finite (keys past Tk are never read).
 */
import type { KernelDef } from './kernel-def.ts';
import {
  backwardBuffers,
  BACKWARD_PARAMS,
  maskBuffers,
  maskKey,
  visibleFn,
  type Masking,
} from './attention-shared.ts';

/** Lanes of a row group: the columns of a block are dealt round-robin over them. */
const LANES = 8;
/** Score of a masked (row, column) pair. */
const MASKED = '-3.0e38';

export interface TiledShape {
  /** Groups of LANES invocations (the workgroup has rowGroups x LANES invocations). */
  rowGroups: number;
  rowsPerThread: number;
  colsPerThread: number;
  /** Subgroups of exactly 8: row vectors in registers, sharing by subgroup operations. */
  sg8: boolean;
}

export const tiledShapeName = (s: TiledShape) =>
  `${s.rowGroups}x${s.rowsPerThread}x${s.colsPerThread}${s.sg8 ? '.s8' : ''}`;

const range = (count: number) => Array.from({ length: count }, (_, i) => i);

type Kind = 'forward' | 'dq' | 'dkdv';

/** The rows' vectors each kind holds, the column tiles it streams, and the weights it shares. */
const LAYOUT: Record<Kind, { rows: string[]; cols: string[]; weights: string[] }> = {
  forward: { rows: ['q'], cols: ['k', 'v'], weights: ['p'] },
  dq: { rows: ['q', 'do'], cols: ['k', 'v'], weights: ['ds'] },
  dkdv: { rows: ['k', 'v'], cols: ['q', 'do'], weights: ['p', 'ds'] },
};

/** vec4s per row of head dimension D (zero-padded past D). */
const vec4s = (D: number) => Math.ceil(D / 4);
/** vec4 chunks of a row per lane: lane c owns chunks c, c + 8, ... (dimensions 4c .. 4c + 3, ...). */
const chunksPerLane = (D: number) => Math.ceil(vec4s(D) / LANES);

/** Row stride (vec4s) of a column tile: odd when staged, so that lanes reading rows c, c + 8 spread over banks. */
const colStride = (D: number, s: TiledShape) => (s.sg8 ? vec4s(D) : vec4s(D) | 1);

/** Workgroup memory (bytes) a kernel of this kind and shape uses at head dimension D. */
export function tiledWorkgroupBytes(kind: Kind, D: number, s: TiledShape): number {
  const { rows, cols, weights } = LAYOUT[kind];
  const blockRows = s.rowGroups * s.rowsPerThread;
  const blockCols = LANES * s.colsPerThread;
  let bytes = cols.length * blockCols * colStride(D, s) * 16;
  if (!s.sg8) {
    bytes += rows.length * blockRows * vec4s(D) * 16 + weights.length * blockRows * blockCols * 4;
    if (kind === 'forward') bytes += blockRows * LANES * 4;
  }
  return bytes;
}

/**
 * The largest head dimension of the `.s8` kernels: they unroll every loop over D, and lavapipe
 * (where they pay) compiles the backward's for minutes already at 64.
 */
export const MAX_S8_HEAD_DIM = 64;

/**
 * The plan's shape, or the first one that fits `limitBytes` as its columns and then its rows per
 * thread are halved; null (the row kernel runs) when none does, and for `.s8` shapes past
 * MAX_S8_HEAD_DIM.
 */
export function fitTiledShape(
  kind: Kind,
  D: number,
  s: TiledShape,
  limitBytes: number,
): TiledShape | null {
  if (s.sg8 && D > MAX_S8_HEAD_DIM) return null;
  for (let rows = s.rowsPerThread; rows >= 1; rows = Math.floor(rows / 2)) {
    for (let cols = s.colsPerThread; cols >= 1; cols = Math.floor(cols / 2)) {
      const shape = { ...s, rowsPerThread: rows, colsPerThread: cols };
      if (tiledWorkgroupBytes(kind, D, shape) <= limitBytes) return shape;
    }
  }
  return null;
}

/**
 * What the generators share: the shape, D, and WGSL snippets built from them. Rows and columns
 * are vec4 chunks of D; the thread's rows are `myRow + m` (m < tr) and its columns
 * `lane + 8u` (u < tc) of the block; its outputs are chunks `lane + 8e` (e < OE) of its rows.
 */
class Block {
  readonly tr: number;
  readonly tc: number;
  readonly blockRows: number;
  readonly blockCols: number;
  readonly D4: number;
  readonly OE: number;
  readonly stride: number;
  constructor(
    readonly D: number,
    readonly s: TiledShape,
  ) {
    this.tr = s.rowsPerThread;
    this.tc = s.colsPerThread;
    this.blockRows = s.rowGroups * this.tr;
    this.blockCols = LANES * this.tc;
    this.D4 = vec4s(D);
    this.OE = chunksPerLane(D);
    this.stride = colStride(D, s);
  }

  get threads() {
    return this.s.rowGroups * LANES;
  }

  /** Workgroup arrays: column tiles, and when staged the row tiles, weight tiles and `red`. */
  declarations(kind: Kind): string {
    const { rows, cols, weights } = LAYOUT[kind];
    const decl = (name: string, type: string, n: number) =>
      `var<workgroup> ${name}: array<${type}, ${n}>;`;
    const list = cols.map((c) => decl(`${c}Cols`, 'vec4<f32>', this.blockCols * this.stride));
    if (!this.s.sg8) {
      list.push(...rows.map((r) => decl(`${r}Rows`, 'vec4<f32>', this.blockRows * this.D4)));
      list.push(...weights.map((w) => decl(`${w}Tile`, 'f32', this.blockRows * this.blockCols)));
      if (kind === 'forward') list.push(decl('red', 'f32', this.blockRows * LANES));
    }
    return list.join('\n');
  }

  /** WGSL: the lane, and the thread's first row in the block (its group's). */
  get ids(): string {
    return `let lane = ${this.s.sg8 ? 'sgLane' : `lid.x % ${LANES}u`};
  let myRow = (lid.x / ${LANES}u) * ${this.tr}u;`;
  }

  /** WGSL copying `rows` rows from r0 of a buffer into vec4 tile `tile` of row stride `stride` (zero from `limit` on, and past D). */
  private copyRows(
    tile: string,
    rows: number,
    stride: number,
    r0: string,
    limit: string,
    value: (row: string, d: string) => string,
  ) {
    const width = this.D4 * 4;
    return `for (var e = lid.x; e < ${rows * width}u; e += ${this.threads}u) {
      let row = ${r0} + e / ${width}u;
      let d = e % ${width}u;
      ${tile}[(e / ${width}u) * ${stride}u + (d >> 2u)][d & 3u] = select(0.0, ${value(`min(row, ${limit} - 1u)`, `min(d, ${this.D - 1}u)`)}, row < ${limit} && d < ${this.D}u);
    }`;
  }

  /**
   * WGSL loading row vector `name` of rows r0 + i: `value(rowExpr, dExpr)` is the element
   * (both clamped in range); rows past `limit` read as 0. Staged: a cooperative copy into
   * `<name>Rows` (the caller adds a barrier); s8: vec4 registers `<name>_m_e` holding chunk
   * lane + 8e of row myRow + m.
   */
  loadRows(name: string, r0: string, limit: string, value: (row: string, d: string) => string) {
    if (!this.s.sg8) return this.copyRows(`${name}Rows`, this.blockRows, this.D4, r0, limit, value);
    return range(this.tr)
      .flatMap((m) =>
        range(this.OE).map((e) => {
          const row = `${r0} + myRow + ${m}u`;
          const lanes = range(4).map((t) => {
            const d = `lane * 4u + ${e * LANES * 4 + t}u`;
            return `select(0.0, ${value(`min(${row}, ${limit} - 1u)`, `min(${d}, ${this.D - 1}u)`)}, ${d} < ${this.D}u)`;
          });
          return `let ${name}_${m}_${e} = select(vec4<f32>(), vec4<f32>(${lanes.join(', ')}), ${row} < ${limit});`;
        }),
      )
      .join('\n  ');
  }

  /** WGSL copying column rows c0.. of a buffer into `<name>Cols` (zero from `limit` on). */
  loadCols(name: string, c0: string, limit: string, value: (row: string, d: string) => string) {
    return this.copyRows(`${name}Cols`, this.blockCols, this.stride, c0, limit, value);
  }

  /**
   * WGSL `var <out>_m_u` = dot of the thread's row m of `rowName` with its column u of
   * `colName`, a vec4 chunk at a time. s8: a row chunk comes from the lane holding it
   * (constant lanes and registers: the loop is unrolled).
   */
  dots(out: string, rowName: string, colName: string): string {
    const lines = range(this.tr).flatMap((m) =>
      range(this.tc).map((u) => `var ${out}_${m}_${u} = 0.0;`),
    );
    const step = (c: string, rowValue: (m: number) => string) => [
      ...range(this.tc).map(
        (u) => `let c${u} = ${colName}Cols[(lane + ${u * LANES}u) * ${this.stride}u + ${c}];`,
      ),
      ...range(this.tr).flatMap((m) => [
        `{ let r = ${rowValue(m)};`,
        ...range(this.tc).map((u) => `${out}_${m}_${u} += dot(r, c${u});`),
        '}',
      ]),
    ];
    if (this.s.sg8) {
      for (const c of range(this.D4)) {
        const reg = (m: number) =>
          `subgroupBroadcast(${rowName}_${m}_${Math.floor(c / LANES)}, ${c % LANES}u)`;
        lines.push('{', ...step(`${c}u`, reg), '}');
      }
    } else {
      lines.push(`for (var c = 0u; c < ${this.D4}u; c++) {`);
      lines.push(...step('c', (m) => `${rowName}Rows[(myRow + ${m}u) * ${this.D4}u + c]`), '}');
    }
    return lines.join('\n      ');
  }

  /** WGSL publishing weights `<w>_m_u` to the other lanes of the group (staged: a tile, and the caller adds the barrier; s8 broadcasts them). */
  publish(w: string): string {
    if (this.s.sg8) return '';
    return range(this.tr)
      .flatMap((m) =>
        range(this.tc).map(
          (u) =>
            `${w}Tile[(myRow + ${m}u) * ${this.blockCols}u + lane + ${u * LANES}u] = ${w}_${m}_${u};`,
        ),
      )
      .join('\n      ');
  }

  /** WGSL `<acc>_m_e += sum over the block's columns x of weight(m, x) * <col>Cols[x][chunk lane + 8e]`. */
  accumulate(acc: string, w: string, colName: string): string {
    const step = (x: string, weight: (m: number) => string) => [
      ...range(this.OE).map(
        (e) =>
          `let c${e} = ${colName}Cols[${x} * ${this.stride}u + min(lane + ${e * LANES}u, ${this.D4 - 1}u)];`,
      ),
      ...range(this.tr).flatMap((m) => [
        `{ let wt = vec4<f32>(${weight(m)});`,
        ...range(this.OE).map((e) => `${acc}_${m}_${e} = fma(wt, c${e}, ${acc}_${m}_${e});`),
        '}',
      ]),
    ];
    if (this.s.sg8) {
      return range(this.blockCols)
        .flatMap((x) => {
          const weight = (m: number) =>
            `subgroupBroadcast(${w}_${m}_${Math.floor(x / LANES)}, ${x % LANES}u)`;
          return ['{', ...step(`${x}u`, weight), '}'];
        })
        .join('\n      ');
    }
    return [
      `for (var x = 0u; x < ${this.blockCols}u; x++) {`,
      ...step('x', (m) => `${w}Tile[(myRow + ${m}u) * ${this.blockCols}u + x]`),
      '}',
    ].join('\n      ');
  }

  /** WGSL declaring vec4 accumulators `<acc>_m_e` = 0. */
  accumulators(acc: string): string {
    return range(this.tr)
      .flatMap((m) => range(this.OE).map((e) => `var ${acc}_${m}_${e} = vec4<f32>();`))
      .join(' ');
  }

  /** WGSL storing `<acc>_m_e * factor(m)` to `dst` at element `rowBase(row) + dimension` for rows below `limit`. */
  store(
    acc: string,
    dst: string,
    r0: string,
    limit: string,
    rowBase: (row: string) => string,
    factor: (m: number) => string,
  ) {
    return range(this.tr)
      .map((m) => {
        const row = `${r0} + myRow + ${m}u`;
        const stores = range(this.OE).flatMap((e) =>
          range(4).map((t) => {
            const d = `lane * 4u + ${e * LANES * 4 + t}u`;
            return `if (${d} < ${this.D}u) { ${dst}[P.${dst}_off + ${rowBase(row)} + ${d}] = ${acc}_${m}_${e}[${t}] * f; }`;
          }),
        );
        return `if (${row} < ${limit}) {
    let f = ${factor(m)};
    ${stores.join('\n    ')}
  }`;
      })
      .join('\n  ');
  }

  /** WGSL replacing per-thread values `<x>_m` by their `op` ('max' | 'add') over the group's lanes. */
  reduceLanes(x: string, op: 'max' | 'add'): string {
    if (this.s.sg8) {
      const fn = op === 'max' ? 'subgroupMax' : 'subgroupAdd';
      return range(this.tr)
        .map((m) => `${x}_${m} = ${fn}(${x}_${m});`)
        .join(' ');
    }
    const slot = (m: number, l: number) => `red[(myRow + ${m}u) * ${LANES}u + ${l}u]`;
    const combine = (m: number) =>
      op === 'max'
        ? range(LANES).reduce((acc, l) => `max(${acc}, ${slot(m, l)})`, slot(m, 0))
        : range(LANES)
            .map((l) => slot(m, l))
            .join(' + ');
    return `${range(this.tr)
      .map((m) => `red[(myRow + ${m}u) * ${LANES}u + lane] = ${x}_${m};`)
      .join(' ')}
      workgroupBarrier();
      ${range(this.tr)
        .map((m) => `${x}_${m} = ${combine(m)};`)
        .join('\n      ')}`;
  }

  /** Kernel-def fields that depend on the flavour (subgroup builtins). */
  flavour(): Pick<KernelDef, 'directives' | 'builtins'> {
    return this.s.sg8
      ? {
          directives: ['enable subgroups;'],
          builtins: ['@builtin(subgroup_invocation_id) sgLane: u32'],
        }
      : {};
  }
}

/** Element loader of row `row` of a k / v buffer ([B, kvCap, KVH, D], kv head g). */
const kvElement =
  (src: string, D: number, factor = '') =>
  (row: string, d: string) =>
    `${src}[P.${src}_off + ((b * P.kvCap + ${row}) * P.KVH + g) * ${D}u + ${d}]${factor}`;
/** Element loader of row `row` of a q / dout buffer ([B, T, H, D], head h; `T` names the param). */
const qElement =
  (src: string, D: number, T: string, factor = '') =>
  (row: string, d: string) =>
    `${src}[P.${src}_off + ((b * ${T} + ${row}) * P.H + h) * ${D}u + ${d}]${factor}`;

function pairsOf(blk: Block) {
  return range(blk.tr).flatMap((m) => range(blk.tc).map((u) => [m, u] as const));
}

export function tiledForwardKernel(D: number, m: Masking, s: TiledShape): KernelDef {
  const blk = new Block(D, s);
  const { tr, tc, blockRows, blockCols } = blk;
  return {
    key: `attention-tiled-forward:${D}:${tiledShapeName(s)}:${maskKey(m)}`,
    params: {
      Tq: 'u32',
      Tk: 'u32',
      kvCap: 'u32',
      H: 'u32',
      KVH: 'u32',
      scale: 'f32',
      emptyRowLse: 'f32',
      window: 'u32',
    },
    buffers: [
      { name: 'q', dtype: 'f32', access: 'read' },
      { name: 'k', dtype: 'f32', access: 'read' },
      { name: 'v', dtype: 'f32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
      { name: 'lse', dtype: 'f32', access: 'read_write' },
      ...maskBuffers(m),
    ],
    workgroupSize: [blk.threads],
    ...blk.flavour(),
    prelude: `${blk.declarations('forward')}\n${visibleFn(m)}`,
    body: `
  let bh = wid.y;
  let b = bh / P.H;
  let h = bh % P.H;
  let g = h / (P.H / P.KVH);
  ${blk.ids}
  let q0 = wid.x * ${blockRows}u;
  ${blk.loadRows('q', 'q0', 'P.Tq', qElement('q', D, 'P.Tq', ' * P.scale'))}
  // Query i sits at position Tk - Tq + i; the block sees keys up to its last query's position
  // and, in a sliding window, from its first query's position - window + 1.
  let first = P.Tk - P.Tq + q0;
  let keyEnd = P.Tk - P.Tq + min(q0 + ${blockRows}u, P.Tq);
  var keyBegin = 0u;
  if (P.window > 0u && first + 1u > P.window) { keyBegin = first + 1u - P.window; }
  ${range(tr)
    .map(
      (mm) =>
        `let valid${mm} = q0 + myRow + ${mm}u < P.Tq; let pos${mm} = first + myRow + ${mm}u; var runMax_${mm} = ${MASKED}; var runSum_${mm} = 0.0; var tileMax_${mm} = 0.0;`,
    )
    .join('\n  ')}
  ${blk.accumulators('acc')}
  for (var j0 = keyBegin; j0 < keyEnd; j0 += ${blockCols}u) {
    ${blk.loadCols('k', 'j0', 'keyEnd', kvElement('k', D))}
    ${blk.loadCols('v', 'j0', 'keyEnd', kvElement('v', D))}
    workgroupBarrier();
    {
      ${blk.dots('s', 'q', 'k')}
      ${pairsOf(blk)
        .map(([mm, u]) => {
          const j = `j0 + lane + ${u * LANES}u`;
          return `if (!(valid${mm} && ${j} < keyEnd && visible(b, pos${mm}, ${j}))) { s_${mm}_${u} = ${MASKED}; }`;
        })
        .join('\n      ')}
      ${range(tr)
        .map(
          (mm) =>
            `tileMax_${mm} = ${range(tc).reduce((acc, u) => `max(${acc}, s_${mm}_${u})`, `s_${mm}_0`)};`,
        )
        .join('\n      ')}
      ${blk.reduceLanes('tileMax', 'max')}
      ${range(tr)
        .map(
          (mm) => `let newMax${mm} = max(runMax_${mm}, tileMax_${mm});
      let correction${mm} = exp(runMax_${mm} - newMax${mm});
      runMax_${mm} = newMax${mm};
      ${range(tc)
        .map(
          (u) =>
            `var p_${mm}_${u} = 0.0; if (s_${mm}_${u} > -1.0e38) { p_${mm}_${u} = exp(s_${mm}_${u} - newMax${mm}); }`,
        )
        .join(' ')}
      runSum_${mm} = runSum_${mm} * correction${mm} + ${range(tc)
        .map((u) => `p_${mm}_${u}`)
        .join(' + ')};
      ${range(blk.OE)
        .map((e) => `acc_${mm}_${e} *= correction${mm};`)
        .join(' ')}`,
        )
        .join('\n      ')}
      ${blk.publish('p')}
      ${s.sg8 ? '' : 'workgroupBarrier();'}
      ${blk.accumulate('acc', 'p', 'v')}
    }
    workgroupBarrier();
  }
  ${blk.reduceLanes('runSum', 'add')}
  ${blk.store(
    'acc',
    'out',
    'q0',
    'P.Tq',
    (row) => `((b * P.Tq + ${row}) * P.H + h) * ${D}u`,
    (mm) => `select(0.0, 1.0 / runSum_${mm}, runSum_${mm} > 0.0)`,
  )}
  if (lane == 0u) {
    ${range(tr)
      .map(
        (mm) =>
          `if (valid${mm}) { lse[P.lse_off + bh * P.Tq + q0 + myRow + ${mm}u] = select(P.emptyRowLse, runMax_${mm} + log(runSum_${mm}), runSum_${mm} > 0.0); }`,
      )
      .join('\n    ')}
  }
`,
  };
}

export function tiledDqKernel(D: number, m: Masking, s: TiledShape): KernelDef {
  const blk = new Block(D, s);
  const { tr, blockRows, blockCols } = blk;
  return {
    key: `attention-tiled-dq:${D}:${tiledShapeName(s)}:${maskKey(m)}`,
    params: { ...BACKWARD_PARAMS },
    buffers: backwardBuffers(m, ['dq']),
    workgroupSize: [blk.threads],
    ...blk.flavour(),
    prelude: `${blk.declarations('dq')}\n${visibleFn(m)}`,
    body: `
  let bh = wid.y;
  let b = bh / P.H;
  let h = bh % P.H;
  let g = h / (P.H / P.KVH);
  ${blk.ids}
  let q0 = wid.x * ${blockRows}u;
  ${blk.loadRows('q', 'q0', 'P.T', qElement('q', D, 'P.T', ' * P.scale'))}
  ${blk.loadRows('do', 'q0', 'P.T', qElement('dout', D, 'P.T'))}
  let keyEnd = min(q0 + ${blockRows}u, P.T);
  var keyBegin = 0u;
  if (P.window > 0u && q0 + 1u > P.window) { keyBegin = q0 + 1u - P.window; }
  ${range(tr)
    .map((mm) => {
      const row = `min(q0 + myRow + ${mm}u, P.T - 1u)`;
      return `let valid${mm} = q0 + myRow + ${mm}u < P.T; let pos${mm} = q0 + myRow + ${mm}u; let lse${mm} = lse[P.lse_off + bh * P.T + ${row}]; let delta${mm} = delta[P.delta_off + bh * P.T + ${row}];`;
    })
    .join('\n  ')}
  ${blk.accumulators('acc')}
  for (var j0 = keyBegin; j0 < keyEnd; j0 += ${blockCols}u) {
    ${blk.loadCols('k', 'j0', 'keyEnd', kvElement('k', D))}
    ${blk.loadCols('v', 'j0', 'keyEnd', kvElement('v', D))}
    workgroupBarrier();
    {
      ${blk.dots('s', 'q', 'k')}
      ${blk.dots('dp', 'do', 'v')}
      ${pairsOf(blk)
        .map(([mm, u]) => {
          const j = `j0 + lane + ${u * LANES}u`;
          return `var ds_${mm}_${u} = 0.0; if (valid${mm} && ${j} < keyEnd && visible(b, pos${mm}, ${j})) { ds_${mm}_${u} = exp(s_${mm}_${u} - lse${mm}) * (dp_${mm}_${u} - delta${mm}); }`;
        })
        .join('\n      ')}
      ${blk.publish('ds')}
      ${s.sg8 ? '' : 'workgroupBarrier();'}
      ${blk.accumulate('acc', 'ds', 'k')}
    }
    workgroupBarrier();
  }
  ${blk.store(
    'acc',
    'dq',
    'q0',
    'P.T',
    (row) => `((b * P.T + ${row}) * P.H + h) * ${D}u`,
    () => 'P.scale',
  )}
`,
  };
}

export function tiledDkdvKernel(D: number, m: Masking, s: TiledShape): KernelDef {
  const blk = new Block(D, s);
  const { tr, tc, blockRows, blockCols } = blk;
  return {
    key: `attention-tiled-dkdv:${D}:${tiledShapeName(s)}:${maskKey(m)}`,
    params: { ...BACKWARD_PARAMS },
    buffers: backwardBuffers(m, ['dk', 'dv']),
    workgroupSize: [blk.threads],
    ...blk.flavour(),
    prelude: `${blk.declarations('dkdv')}\n${visibleFn(m)}`,
    body: `
  let bg = wid.y;
  let b = bg / P.KVH;
  let g = bg % P.KVH;
  let group = P.H / P.KVH;
  ${blk.ids}
  let k0 = wid.x * ${blockRows}u;
  ${blk.loadRows('k', 'k0', 'P.T', kvElement('k', D, ' * P.scale'))}
  ${blk.loadRows('v', 'k0', 'P.T', kvElement('v', D))}
  // Queries before the block's first key see none of it; in a sliding window, neither do those
  // at or past its last key + window.
  var queryEnd = P.T;
  if (P.window > 0u) { queryEnd = min(P.T, k0 + ${blockRows - 1}u + P.window); }
  ${range(tr)
    .map((mm) => `let valid${mm} = k0 + myRow + ${mm}u < P.T; let key${mm} = k0 + myRow + ${mm}u;`)
    .join('\n  ')}
  ${blk.accumulators('dk')}
  ${blk.accumulators('dv')}
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let bh = b * P.H + h;
    for (var i0 = k0; i0 < queryEnd; i0 += ${blockCols}u) {
      ${blk.loadCols('q', 'i0', 'queryEnd', qElement('q', D, 'P.T'))}
      ${blk.loadCols('do', 'i0', 'queryEnd', qElement('dout', D, 'P.T'))}
      ${range(tc)
        .map((u) => {
          const row = `min(i0 + lane + ${u * LANES}u, P.T - 1u)`;
          return `let lse${u} = lse[P.lse_off + bh * P.T + ${row}]; let delta${u} = delta[P.delta_off + bh * P.T + ${row}];`;
        })
        .join('\n      ')}
      workgroupBarrier();
      {
        ${blk.dots('s', 'k', 'q')}
        ${blk.dots('dp', 'v', 'do')}
        ${pairsOf(blk)
          .map(([mm, u]) => {
            const i = `i0 + lane + ${u * LANES}u`;
            return `var p_${mm}_${u} = 0.0; var ds_${mm}_${u} = 0.0;
        if (valid${mm} && ${i} < queryEnd && visible(b, ${i}, key${mm})) {
          p_${mm}_${u} = exp(s_${mm}_${u} - lse${u});
          ds_${mm}_${u} = p_${mm}_${u} * (dp_${mm}_${u} - delta${u});
        }`;
          })
          .join('\n        ')}
        ${blk.publish('p')}
        ${blk.publish('ds')}
        ${s.sg8 ? '' : 'workgroupBarrier();'}
        ${blk.accumulate('dv', 'p', 'do')}
        ${blk.accumulate('dk', 'ds', 'q')}
      }
      workgroupBarrier();
    }
  }
  ${blk.store(
    'dk',
    'dk',
    'k0',
    'P.T',
    (row) => `((b * P.kvCap + ${row}) * P.KVH + g) * ${D}u`,
    () => 'P.scale',
  )}
  ${blk.store(
    'dv',
    'dv',
    'k0',
    'P.T',
    (row) => `((b * P.kvCap + ${row}) * P.KVH + g) * ${D}u`,
    () => '1.0',
  )}
`,
  };
}
