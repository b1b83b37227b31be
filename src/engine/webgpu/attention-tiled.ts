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
 * Few pipelines, each quick to compile (a fresh machine compiles every pipeline it uses once, and
 * lavapipe spends seconds per pipeline in LLVM, growing with the number of per-lane memory
 * accesses in the code): the head dimension, the key mask and the segments are uniforms, so one
 * pipeline per kernel, shape and *width* serves every call — the width is D in vec4 chunks
 * rounded up to a multiple of 8 (D <= 32, <= 64, <= 96, ...), which sizes the per-lane registers
 * (one chunk per lane per 8) and the tiles. Absent masks bind a placeholder that is never read,
 * and masks are read once per row and once per column of a block, not per score. Loops over
 * dimensions, columns and vector components stay loops; only the register block (rows x columns
 * per thread, chunks per lane) is written out, so every register is a named variable (no
 * dynamically indexed private array, which would live in memory).
 *
 * Two flavours of the same kernels:
 * - staged (any adapter): the rows' vectors (q, dO / k, v) sit in workgroup memory, read by the
 *   8 lanes of a group at one address (a broadcast read on a GPU); weights and the row reductions
 *   go through workgroup memory; column tiles have an odd row stride (fewer bank conflicts).
 * - `.s8` (adapters whose subgroups are exactly 8 lanes, such as lavapipe): a group is one
 *   subgroup. Row vectors are held in registers spread over the lanes (lane c keeps the chunks it
 *   owns) and handed out by subgroupShuffle from the loop's lane (the same for every invocation);
 *   weights are shared the same way and rows reduced by subgroup operations, so only the column
 *   tiles use workgroup memory. On lavapipe every load from memory at a per-lane address is a
 *   per-lane scalar loop, while reading another lane's register is a few vector instructions:
 *   this is where the tiled kernel gains there. It assumes that the 8 invocations of a group
 *   (consecutive local indices) form one subgroup, as adapters with one fixed subgroup size do.
 *
 * Rows past the end are clamped for loading and not stored, columns past the end are zeroed in
 * the tiles and masked. Masked scores are a finite sentinel, never infinities; masked keys'
 * values are multiplied by a zero weight, so they must be finite (keys past Tk are never read).
 */
import { range, type KernelDef } from './kernel-def.ts';
import type { BufferArg, BufferRef, KernelRunner } from './runner.ts';
import { backwardBuffers, BACKWARD_PARAMS, FORWARD_PARAMS } from './attention-shared.ts';

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

export type TiledKind = 'forward' | 'dq' | 'dkdv';

/** The rows' vectors each kind holds, the column tiles it streams, and the weights it shares. */
const LAYOUT: Record<TiledKind, { rows: string[]; cols: string[]; weights: string[] }> = {
  forward: { rows: ['q'], cols: ['k', 'v'], weights: ['p'] },
  dq: { rows: ['q', 'do'], cols: ['k', 'v'], weights: ['ds'] },
  dkdv: { rows: ['k', 'v'], cols: ['q', 'do'], weights: ['p', 'ds'] },
};

/**
 * The width (vec4 chunks per row) of the kernels that serve head dimension D: D / 4 rounded up
 * to a multiple of LANES, so that every lane owns the same number of chunks of a row and one
 * pipeline serves every D of its bucket; at least 16 (D <= 64 share one: fewer pipelines to
 * compile, for a little waste at toy head sizes).
 */
export const tiledWidth = (D: number) => Math.max(2 * LANES, Math.ceil(D / 4 / LANES) * LANES);

/** Row stride (vec4s) of a column tile: odd when staged, so that lanes reading rows c, c + 8 spread over banks. */
const colStride = (width: number, s: TiledShape) => (s.sg8 ? width : width | 1);

/** Workgroup memory (bytes) a kernel of this kind and shape uses at head dimension D. */
export function tiledWorkgroupBytes(kind: TiledKind, D: number, s: TiledShape): number {
  const { rows, cols, weights } = LAYOUT[kind];
  const width = tiledWidth(D);
  const blockRows = s.rowGroups * s.rowsPerThread;
  const blockCols = LANES * s.colsPerThread;
  let bytes = cols.length * blockCols * colStride(width, s) * 16;
  if (!s.sg8) {
    bytes += rows.length * blockRows * width * 16 + weights.length * blockRows * blockCols * 4;
    if (kind === 'forward') bytes += blockRows * LANES * 4;
  }
  return bytes;
}

/**
 * The staged shapes a plan's shape gives way to when workgroup memory is short, in order: its
 * columns per thread halved down to 1, then its rows per thread halved down to 1 (4x4x2 → 4x4x1
 * → 4x2x1 → 4x1x1). A short fixed ladder, so that every shape the tuner's choice can run as is
 * forced in the tests.
 */
export function narrowedShapes(s: TiledShape): TiledShape[] {
  const out: TiledShape[] = [];
  for (let cols = s.colsPerThread >> 1; cols >= 1; cols >>= 1)
    out.push({ ...s, colsPerThread: cols });
  for (let rows = s.rowsPerThread >> 1; rows >= 1; rows >>= 1)
    out.push({ ...s, rowsPerThread: rows, colsPerThread: 1 });
  return out;
}

/**
 * The plan's shape, or (staged) the first of its narrowedShapes that fits `limitBytes`; null (the
 * row kernel runs) when none does. `.s8` shapes are not narrowed: they serve software adapters,
 * whose limits they fit up to large heads, and the shapes that can run are the ones tested.
 */
export function fitTiledShape(
  kind: TiledKind,
  D: number,
  s: TiledShape,
  limitBytes: number,
): TiledShape | null {
  const fits = (shape: TiledShape) => tiledWorkgroupBytes(kind, D, shape) <= limitBytes;
  if (s.sg8) return fits(s) ? s : null;
  return [s, ...narrowedShapes(s)].find(fits) ?? null;
}

/**
 * What the generators share: the shape, the width, and WGSL snippets built from them. Rows and
 * columns are vec4 chunks (`D4` of them at run time, at most `width`); the thread's rows are
 * `myRow + m` (m < tr) and its columns `lane + 8u` (u < tc) of the block; its outputs are chunks
 * `lane + 8e` (e < OE) of its rows.
 */
class Block {
  readonly tr: number;
  readonly tc: number;
  readonly blockRows: number;
  readonly blockCols: number;
  readonly OE: number;
  readonly stride: number;
  constructor(
    readonly width: number,
    readonly s: TiledShape,
  ) {
    this.tr = s.rowsPerThread;
    this.tc = s.colsPerThread;
    this.blockRows = s.rowGroups * this.tr;
    this.blockCols = LANES * this.tc;
    this.OE = width / LANES;
    this.stride = colStride(width, s);
  }

  get threads() {
    return this.s.rowGroups * LANES;
  }

  /** Workgroup arrays: column tiles, and when staged the row tiles, weight tiles and `red`. */
  declarations(kind: TiledKind): string {
    const { rows, cols, weights } = LAYOUT[kind];
    const decl = (name: string, type: string, n: number) =>
      `var<workgroup> ${name}: array<${type}, ${n}>;`;
    const list = cols.map((c) => decl(`${c}Cols`, 'vec4<f32>', this.blockCols * this.stride));
    if (!this.s.sg8) {
      list.push(...rows.map((r) => decl(`${r}Rows`, 'vec4<f32>', this.blockRows * this.width)));
      list.push(...weights.map((w) => decl(`${w}Tile`, 'f32', this.blockRows * this.blockCols)));
      if (kind === 'forward') list.push(decl('red', 'f32', this.blockRows * LANES));
    }
    return list.join('\n');
  }

  /** WGSL: the lane, the thread's first row in the block (its group's), and D4 (chunks of D). */
  get ids(): string {
    return `let lane = ${this.s.sg8 ? 'sgLane' : `lid.x % ${LANES}u`};
  let myRow = (lid.x / ${LANES}u) * ${this.tr}u;
  let D4 = (P.D + 3u) / 4u;`;
  }

  /**
   * WGSL of the kernels that own a block of queries (forward, dq): their batch b, head h and its
   * kv head g, the ids, and the block's first query q0.
   */
  get queryBlockIds(): string {
    return `let bh = wid.y;
  let b = bh / P.H;
  let h = bh % P.H;
  let g = h / (P.H / P.KVH);
  ${this.ids}
  let q0 = wid.x * ${this.blockRows}u;`;
  }

  /** WGSL copying `rows` rows from r0 of a buffer into vec4 tile `tile` of row stride `stride`, a chunk per step (zero from `limit` on, and past D). */
  private copyRows(
    tile: string,
    rows: number,
    stride: number,
    r0: string,
    limit: string,
    value: (row: string, d: string) => string,
  ) {
    const lanes = range(4).map(
      (t) => `select(0.0, ${value('row', `min(c * 4u + ${t}u, P.D - 1u)`)}, c * 4u + ${t}u < P.D)`,
    );
    return `for (var e = lid.x; e < ${rows}u * D4; e += ${this.threads}u) {
      let c = e % D4;
      let row = min(${r0} + e / D4, ${limit} - 1u);
      ${tile}[(e / D4) * ${stride}u + c] = select(vec4<f32>(), vec4<f32>(${lanes.join(', ')}), ${r0} + e / D4 < ${limit});
    }`;
  }

  /**
   * WGSL loading row vector `name` of rows r0 + i: `value(rowExpr, dExpr)` is the element
   * (both clamped in range); rows past `limit` read as 0. Staged: a cooperative copy into
   * `<name>Rows` (the caller adds a barrier); s8: vec4 registers `<name>_m_e` holding chunk
   * lane + 8e of row myRow + m.
   */
  loadRows(name: string, r0: string, limit: string, value: (row: string, d: string) => string) {
    if (!this.s.sg8)
      return this.copyRows(`${name}Rows`, this.blockRows, this.width, r0, limit, value);
    // A loop over the 4 components: one load per register in the code (compile time).
    const registers = this.registers(name);
    const loads = registers.map(([m, e, reg]) => {
      const row = `${r0} + myRow + ${m}u`;
      const d = `lane * 4u + ${e * LANES * 4}u + t`;
      return `if (${row} < ${limit} && ${d} < P.D) { ${reg} = select(${reg}, vec4<f32>(${value(row, d)}), component); }`;
    });
    return `${registers.map(([, , reg]) => `var ${reg} = vec4<f32>();`).join(' ')}
  for (var t = 0u; t < 4u; t++) {
    let component = vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(t);
    ${loads.join('\n    ')}
  }`;
  }

  /** The thread's vec4 registers `<name>_m_e` (row m, chunk lane + 8e) as [m, e, name]. */
  registers(name: string): [number, number, string][] {
    return range(this.tr).flatMap((m) =>
      range(this.OE).map((e): [number, number, string] => [m, e, `${name}_${m}_${e}`]),
    );
  }

  /** WGSL copying column rows c0.. of a buffer into `<name>Cols` (zero from `limit` on). */
  loadCols(name: string, c0: string, limit: string, value: (row: string, d: string) => string) {
    return this.copyRows(`${name}Cols`, this.blockCols, this.stride, c0, limit, value);
  }

  /**
   * WGSL `var <out>_m_u` = dot of the thread's row m of `rowName` with its column u of
   * `colName`, a vec4 chunk at a time. s8: chunk 8e + l of a row is register e of lane l,
   * shuffled from that lane (l runs in a loop, e is written out: registers keep constant names).
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
      for (const e of range(this.OE)) {
        // Chunks 8e .. 8e + 7 that hold dimensions of D (none past D4).
        const end = e === 0 ? `min(${LANES}u, D4)` : `min(${LANES}u, D4 - min(D4, ${e * LANES}u))`;
        lines.push(`for (var l = 0u; l < ${end}; l++) {`);
        lines.push(
          ...step(`${e * LANES}u + l`, (m) => `subgroupShuffle(${rowName}_${m}_${e}, l)`),
          '}',
        );
      }
    } else {
      lines.push(`for (var c = 0u; c < D4; c++) {`);
      lines.push(...step('c', (m) => `${rowName}Rows[(myRow + ${m}u) * ${this.width}u + c]`), '}');
    }
    return lines.join('\n      ');
  }

  /** WGSL publishing weights `<w>_m_u` to the other lanes of the group (staged: a tile, and the caller adds the barrier; s8 shuffles them). */
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
        (e) => `let c${e} = ${colName}Cols[(${x}) * ${this.stride}u + lane + ${e * LANES}u];`,
      ),
      ...range(this.tr).flatMap((m) => [
        `{ let wt = vec4<f32>(${weight(m)});`,
        ...range(this.OE).map((e) => `${acc}_${m}_${e} = fma(wt, c${e}, ${acc}_${m}_${e});`),
        '}',
      ]),
    ];
    if (this.s.sg8) {
      // Column 8u + l's weight is lane l's register u.
      return range(this.tc)
        .flatMap((u) => [
          `for (var l = 0u; l < ${LANES}u; l++) {`,
          ...step(`${u * LANES}u + l`, (m) => `subgroupShuffle(${w}_${m}_${u}, l)`),
          '}',
        ])
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
    return this.registers(acc)
      .map(([, , reg]) => `var ${reg} = vec4<f32>();`)
      .join(' ');
  }

  /** WGSL storing `<acc>_m_e * factor(m)` to `dst` at element `rowBase(row) + dimension` for rows below `limit` (a loop over components: one store per register in the code). */
  store(
    acc: string,
    dst: string,
    r0: string,
    limit: string,
    rowBase: (row: string) => string,
    factor: (m: number) => string,
  ) {
    const stores = this.registers(acc).map(([m, e, reg]) => {
      const row = `${r0} + myRow + ${m}u`;
      const d = `lane * 4u + ${e * LANES * 4}u + t`;
      return `if (${row} < ${limit} && ${d} < P.D) { ${dst}[P.${dst}_off + ${rowBase(row)} + ${d}] = ${reg}[t] * (${factor(m)}); }`;
    });
    return `for (var t = 0u; t < 4u; t++) {
    ${stores.join('\n    ')}
  }`;
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

/** Uniforms every tiled kernel adds to its pass's params: D and which masks are bound. */
const TILED_PARAMS = { D: 'u32', keyMaskOn: 'u32', segIdsOn: 'u32' } as const;

/** Both masks are always declared; `P.keyMaskOn` / `P.segIdsOn` say whether they apply. */
const MASKS = { keyMask: true, segIds: true };

/**
 * WGSL helpers for visibility, split by side so that the masks are read once per row and once
 * per column of a block (not once per score): key j is visible to the query at position p when
 * causal(p, j), keyKept(j) and their segments match (kvCap is the mask row length).
 */
const VISIBILITY = `
fn causal(p: u32, j: u32) -> bool {
  return j <= p && (P.window == 0u || j + P.window > p);
}
fn keyKept(b: u32, j: u32) -> bool {
  return P.keyMaskOn == 0u || keyMask[P.keyMask_off + b * P.kvCap + j] != 0;
}
fn segmentOf(b: u32, p: u32) -> i32 {
  if (P.segIdsOn == 0u) { return 0; }
  return segIds[P.segIds_off + b * P.kvCap + p];
}`;

/**
 * WGSL per column u of the block (position `first` + lane + 8u, valid below `end`):
 * `col<u>`, `colSeg<u>`, and with `keys` also `colOk<u>` (in range and kept by the key mask).
 */
function columnMasks(blk: Block, first: string, end: string, keys: boolean): string {
  return range(blk.tc)
    .map((u) => {
      const clamped = `min(col${u}, ${end} - 1u)`;
      return `let col${u} = ${first} + lane + ${u * LANES}u; let colSeg${u} = segmentOf(b, ${clamped});${
        keys ? ` let colOk${u} = col${u} < ${end} && keyKept(b, ${clamped});` : ''
      }`;
    })
    .join('\n      ');
}

/**
 * The mask buffers and flags of a tiled dispatch: a mask that is absent binds a placeholder
 * (never read: its flag is 0), so that masked and unmasked calls share a pipeline.
 */
export function tiledMaskArgs(
  runner: KernelRunner,
  B: number,
  kvCap: number,
  keyMask: BufferRef | null,
  segIds: BufferRef | null,
): { buffers: Record<'keyMask' | 'segIds', BufferArg>; params: Record<string, number> } {
  const placeholder = { ref: runner.scratchBuffer('attention-no-mask', 16), elements: 1 };
  const arg = (ref: BufferRef | null) => (ref ? { ref, elements: B * kvCap } : placeholder);
  return {
    buffers: { keyMask: arg(keyMask), segIds: arg(segIds) },
    params: { keyMaskOn: keyMask ? 1 : 0, segIdsOn: segIds ? 1 : 0 },
  };
}

/** Element loader of row `row` of a k / v buffer ([B, kvCap, KVH, D], kv head g). */
const kvElement =
  (src: string, factor = '') =>
  (row: string, d: string) =>
    `${src}[P.${src}_off + ((b * P.kvCap + ${row}) * P.KVH + g) * P.D + ${d}]${factor}`;
/** Element loader of row `row` of a q / dout buffer ([B, T, H, D], head h; `T` names the param). */
const qElement =
  (src: string, T: string, factor = '') =>
  (row: string, d: string) =>
    `${src}[P.${src}_off + ((b * ${T} + ${row}) * P.H + h) * P.D + ${d}]${factor}`;

function pairsOf(blk: Block) {
  return range(blk.tr).flatMap((m) => range(blk.tc).map((u) => [m, u] as const));
}

/** The pipeline key of a tiled kernel: one per kind, width and shape. */
const tiledKey = (kind: TiledKind, width: number, s: TiledShape) =>
  `attention-tiled-${kind}:w${width}:${tiledShapeName(s)}`;
/** The forward for head dimensions D of `width` (tiledWidth). */
export function tiledForwardKernel(width: number, s: TiledShape): KernelDef {
  const blk = new Block(width, s);
  const { tr, tc, blockRows, blockCols } = blk;
  return {
    key: tiledKey('forward', width, s),
    params: { ...FORWARD_PARAMS, ...TILED_PARAMS },
    buffers: [
      { name: 'q', dtype: 'f32', access: 'read' },
      { name: 'k', dtype: 'f32', access: 'read' },
      { name: 'v', dtype: 'f32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
      { name: 'lse', dtype: 'f32', access: 'read_write' },
      { name: 'keyMask', dtype: 'i32', access: 'read' },
      { name: 'segIds', dtype: 'i32', access: 'read' },
    ],
    workgroupSize: [blk.threads],
    ...blk.flavour(),
    prelude: `${blk.declarations('forward')}\n${VISIBILITY}`,
    body: `
  ${blk.queryBlockIds}
  ${blk.loadRows('q', 'q0', 'P.Tq', qElement('q', 'P.Tq', ' * P.scale'))}
  // Query i sits at position Tk - Tq + i; the block sees keys up to its last query's position
  // and, in a sliding window, from its first query's position - window + 1.
  let first = P.Tk - P.Tq + q0;
  let keyEnd = P.Tk - P.Tq + min(q0 + ${blockRows}u, P.Tq);
  var keyBegin = 0u;
  if (P.window > 0u && first + 1u > P.window) { keyBegin = first + 1u - P.window; }
  ${range(tr)
    .map(
      (mm) =>
        `let valid${mm} = q0 + myRow + ${mm}u < P.Tq; let pos${mm} = first + myRow + ${mm}u; let seg${mm} = segmentOf(b, min(pos${mm}, P.Tk - 1u)); var runMax_${mm} = ${MASKED}; var runSum_${mm} = 0.0; var tileMax_${mm} = 0.0;`,
    )
    .join('\n  ')}
  ${blk.accumulators('acc')}
  for (var j0 = keyBegin; j0 < keyEnd; j0 += ${blockCols}u) {
    ${blk.loadCols('k', 'j0', 'keyEnd', kvElement('k'))}
    ${blk.loadCols('v', 'j0', 'keyEnd', kvElement('v'))}
    workgroupBarrier();
    {
      ${blk.dots('s', 'q', 'k')}
      ${columnMasks(blk, 'j0', 'keyEnd', true)}
      ${pairsOf(blk)
        .map(
          ([mm, u]) =>
            `if (!(valid${mm} && colOk${u} && colSeg${u} == seg${mm} && causal(pos${mm}, col${u}))) { s_${mm}_${u} = ${MASKED}; }`,
        )
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
    (row) => `((b * P.Tq + ${row}) * P.H + h) * P.D`,
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

/** The dq kernel for head dimensions D of `width` (tiledWidth). */
export function tiledDqKernel(width: number, s: TiledShape): KernelDef {
  const blk = new Block(width, s);
  const { tr, blockRows, blockCols } = blk;
  return {
    key: tiledKey('dq', width, s),
    params: { ...BACKWARD_PARAMS, ...TILED_PARAMS },
    buffers: backwardBuffers(MASKS, ['dq']),
    workgroupSize: [blk.threads],
    ...blk.flavour(),
    prelude: `${blk.declarations('dq')}\n${VISIBILITY}`,
    body: `
  ${blk.queryBlockIds}
  ${blk.loadRows('q', 'q0', 'P.T', qElement('q', 'P.T', ' * P.scale'))}
  ${blk.loadRows('do', 'q0', 'P.T', qElement('dout', 'P.T'))}
  let keyEnd = min(q0 + ${blockRows}u, P.T);
  var keyBegin = 0u;
  if (P.window > 0u && q0 + 1u > P.window) { keyBegin = q0 + 1u - P.window; }
  ${range(tr)
    .map((mm) => {
      const row = `min(q0 + myRow + ${mm}u, P.T - 1u)`;
      return `let valid${mm} = q0 + myRow + ${mm}u < P.T; let pos${mm} = q0 + myRow + ${mm}u; let seg${mm} = segmentOf(b, ${row}); let lse${mm} = lse[P.lse_off + bh * P.T + ${row}]; let delta${mm} = delta[P.delta_off + bh * P.T + ${row}];`;
    })
    .join('\n  ')}
  ${blk.accumulators('acc')}
  for (var j0 = keyBegin; j0 < keyEnd; j0 += ${blockCols}u) {
    ${blk.loadCols('k', 'j0', 'keyEnd', kvElement('k'))}
    ${blk.loadCols('v', 'j0', 'keyEnd', kvElement('v'))}
    workgroupBarrier();
    {
      ${blk.dots('s', 'q', 'k')}
      ${blk.dots('dp', 'do', 'v')}
      ${columnMasks(blk, 'j0', 'keyEnd', true)}
      ${pairsOf(blk)
        .map(
          ([mm, u]) =>
            `var ds_${mm}_${u} = 0.0; if (valid${mm} && colOk${u} && colSeg${u} == seg${mm} && causal(pos${mm}, col${u})) { ds_${mm}_${u} = exp(s_${mm}_${u} - lse${mm}) * (dp_${mm}_${u} - delta${mm}); }`,
        )
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
    (row) => `((b * P.T + ${row}) * P.H + h) * P.D`,
    () => 'P.scale',
  )}
`,
  };
}

/** The dk/dv kernel for head dimensions D of `width` (tiledWidth). */
export function tiledDkdvKernel(width: number, s: TiledShape): KernelDef {
  const blk = new Block(width, s);
  const { tr, tc, blockRows, blockCols } = blk;
  return {
    key: tiledKey('dkdv', width, s),
    params: { ...BACKWARD_PARAMS, ...TILED_PARAMS },
    buffers: backwardBuffers(MASKS, ['dk', 'dv']),
    workgroupSize: [blk.threads],
    ...blk.flavour(),
    prelude: `${blk.declarations('dkdv')}\n${VISIBILITY}`,
    body: `
  let bg = wid.y;
  let b = bg / P.KVH;
  let g = bg % P.KVH;
  let group = P.H / P.KVH;
  ${blk.ids}
  let k0 = wid.x * ${blockRows}u;
  ${blk.loadRows('k', 'k0', 'P.T', kvElement('k', ' * P.scale'))}
  ${blk.loadRows('v', 'k0', 'P.T', kvElement('v'))}
  // Queries before the block's first key see none of it; in a sliding window, neither do those
  // at or past its last key + window.
  var queryEnd = P.T;
  if (P.window > 0u) { queryEnd = min(P.T, k0 + ${blockRows - 1}u + P.window); }
  ${range(tr)
    .map((mm) => {
      const key = `k0 + myRow + ${mm}u`;
      return `let key${mm} = ${key}; let keyOk${mm} = ${key} < P.T && keyKept(b, min(${key}, P.T - 1u)); let seg${mm} = segmentOf(b, min(${key}, P.T - 1u));`;
    })
    .join('\n  ')}
  ${blk.accumulators('dk')}
  ${blk.accumulators('dv')}
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let bh = b * P.H + h;
    for (var i0 = k0; i0 < queryEnd; i0 += ${blockCols}u) {
      ${blk.loadCols('q', 'i0', 'queryEnd', qElement('q', 'P.T'))}
      ${blk.loadCols('do', 'i0', 'queryEnd', qElement('dout', 'P.T'))}
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
        ${columnMasks(blk, 'i0', 'queryEnd', false)}
        ${pairsOf(blk)
          .map(([mm, u]) => {
            return `var p_${mm}_${u} = 0.0; var ds_${mm}_${u} = 0.0;
        if (keyOk${mm} && col${u} < queryEnd && colSeg${u} == seg${mm} && causal(col${u}, key${mm})) {
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
    (row) => `((b * P.kvCap + ${row}) * P.KVH + g) * P.D`,
    () => 'P.scale',
  )}
  ${blk.store(
    'dv',
    'dv',
    'k0',
    'P.T',
    (row) => `((b * P.kvCap + ${row}) * P.KVH + g) * P.D`,
    () => '1.0',
  )}
`,
  };
}
