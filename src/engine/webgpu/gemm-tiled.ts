/**
 * Register-tiled GEMM kernels (the tuned path of gemm.ts): C = alpha * op(A) op(B) + beta * C + bias.
 *
 * A workgroup of `wgX x wgY` threads computes a `BM x BN` block of C (BM = wgY * tm, BN = wgX * tn),
 * walking k in steps of `bk`: each step stages a `bk x BM` slice of A and a `bk x BN` slice of B in
 * workgroup memory, then every thread multiplies `tm` A values by `tn / 4` vec4s of B into
 * `tm x tn` f32 accumulators held in registers (tm * tn multiply-adds per tm + tn/4 shared loads).
 * The A values a thread reads are the same for all threads of its row of the workgroup, so
 * neighbouring invocations broadcast them instead of each fetching its own.
 *
 * Global loads follow the operand's stored layout: f32 operands whose rows are 16-byte aligned are
 * bound as vec4<f32> and read four elements per load; f16 / bf16 operands are read as packed u32
 * pairs (two elements per load) and widened in the shader (WGSL has no bf16). With `f16` the
 * staged tiles are f16 (half the workgroup memory and shared-memory traffic; needs `shader-f16`)
 * while the products still accumulate in f32.
 *
 * Split-K: with `P.kchunk < k` the grid's z dimension walks k in chunks and every chunk writes
 * alpha * its partial product into its own slab of a scratch buffer; `splitKReduce` then sums the
 * slabs into C with beta and bias. That keeps every core busy on skinny products (decode rows,
 * LoRA rank-r factors) whose C has too few tiles for the device.
 */
import { range, wgslLoader, type KernelDef, type StorageDtype } from './kernel-def.ts';
import { DIRECT_K_STEP, type DirectTile } from './gemm-direct.ts';
import {
  matrixBlockCols,
  matrixBlockRows,
  matrixThreads,
  matrixTileName,
  parseMatrixTileName,
  type MatrixTile,
} from './gemm-matrix.ts';

/**
 * A GEMM kernel shape: staged through workgroup memory (this file), direct (gemm-direct.ts) or on
 * subgroup matrices (gemm-matrix.ts).
 */
export type GemmTile = StagedTile | DirectTile | MatrixTile;

export interface StagedTile {
  kind: 'staged';
  /** Threads along n and along m. */
  wgX: number;
  wgY: number;
  /** Outputs per thread along m and along n (tn a multiple of 4: accumulators are vec4 columns). */
  tm: number;
  tn: number;
  /** k depth staged per step. */
  bk: number;
  /** f16 workgroup tiles (needs shader-f16); accumulation stays f32. */
  f16: boolean;
  /**
   * Share A values across a subgroup (needs `subgroups`): each invocation reads one of its rows'
   * values from workgroup memory and receives the others by subgroup broadcast, cutting the
   * workgroup-memory reads per k step from tm + tn/4 to 1 + tn/4 where the invocations of a
   * subgroup share their rows (checked at run time; otherwise every invocation reads its own).
   */
  sg: boolean;
}

/**
 * A short stable name, used by the tuner's cache, tests and LORAFORGE_WEBGPU_GEMM: staged tiles
 * `8x16.8x8.k16[.f16][.sg]` (threads, outputs per thread, k depth), direct ones `d64.8x4[.s8]`
 * (threads, outputs per thread, A shared through subgroups of 8), subgroup-matrix ones
 * `sm16x16x16.f16.2x2.2x2.k32.l32` (matrixTileName).
 */
export function tileName(t: GemmTile): string {
  if (t.kind === 'matrix') return matrixTileName(t);
  if (t.kind === 'direct') return `d${t.threads}.${t.tm}x${t.tn}${t.sgA ? `.s${t.sgA}` : ''}`;
  return `${t.wgX}x${t.wgY}.${t.tm}x${t.tn}.k${t.bk}${t.f16 ? '.f16' : ''}${t.sg ? '.sg' : ''}`;
}

export function parseTileName(name: string): GemmTile | null {
  if (name.startsWith('sm')) return parseMatrixTileName(name);
  const direct = /^d(\d+)\.(\d+)x(\d+)(?:\.s(\d+))?$/.exec(name);
  if (direct) {
    const [threads, tm, tn] = direct.slice(1, 4).map(Number) as [number, number, number];
    return {
      kind: 'direct',
      threads,
      tm,
      tn,
      bk: DIRECT_K_STEP,
      sgA: Number(direct[4] ?? 0),
    };
  }
  const match = /^(\d+)x(\d+)\.(\d+)x(\d+)\.k(\d+)(\.f16)?(\.sg)?$/.exec(name);
  if (!match) return null;
  const [wgX, wgY, tm, tn, bk] = match.slice(1, 6).map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  return {
    kind: 'staged',
    wgX,
    wgY,
    tm,
    tn,
    bk,
    f16: match[6] !== undefined,
    sg: match[7] !== undefined,
  };
}

/**
 * What a tile needs of the device: f16 tiles (and f16 subgroup matrices) `shader-f16` and round
 * the operands to f16, subgroup tiles `subgroups` (and a size); subgroup-matrix tiles also need a
 * matching adapter configuration (tuner.ts whyTileCannotRun).
 */
export const needsF16 = (t: GemmTile) =>
  t.kind === 'staged' ? t.f16 : t.kind === 'matrix' && t.component === 'f16';
export const needsSubgroups = (t: GemmTile) =>
  t.kind === 'staged' ? t.sg : t.kind === 'direct' ? t.sgA > 0 : true;
/** The subgroup size a tile's kernel is built for (direct tiles sharing A), or 0. */
export const subgroupSizeNeeded = (t: GemmTile) => (t.kind === 'direct' ? t.sgA : 0);
export const tileThreads = (t: GemmTile) =>
  t.kind === 'direct' ? t.threads : t.kind === 'matrix' ? matrixThreads(t) : t.wgX * t.wgY;

/** Rows and columns of C one workgroup computes. */
export const blockRows = (t: GemmTile) =>
  t.kind === 'direct' ? t.tm : t.kind === 'matrix' ? matrixBlockRows(t) : t.wgY * t.tm;
export const blockCols = (t: GemmTile) =>
  t.kind === 'direct' ? t.threads * t.tn : t.kind === 'matrix' ? matrixBlockCols(t) : t.wgX * t.tn;

/** How one operand is read from storage: `width` consecutive elements per load. */
export interface OperandAccess {
  dtype: 'f32' | 'f16' | 'bf16';
  /** 4: vec4<f32> binding; 2: a packed u32 pair of halves; 1: one element. */
  width: 1 | 2 | 4;
}

/** One kernel of a tile family: the tile, the operands' layouts and loads, bias, split-K. */
export interface GemmVariant<Tile extends GemmTile = GemmTile> {
  tile: Tile;
  transA: boolean;
  transB: boolean;
  a: OperandAccess;
  b: OperandAccess;
  bias: boolean;
  /** Writes alpha * partial products to a split-K scratch slab instead of finishing C. */
  partial: boolean;
}

/**
 * The widest load an operand allows: every stored row (and the offset) must start on a multiple
 * of the width and the contiguous extent must be a multiple of it, so no load straddles a row end.
 */
export function operandAccess(
  dtype: 'f32' | 'f16' | 'bf16',
  elementOffset: number,
  ld: number,
  contiguousExtent: number,
): OperandAccess {
  const width = dtype === 'f32' ? 4 : 2;
  const fits = elementOffset % width === 0 && ld % width === 0 && contiguousExtent % width === 0;
  return { dtype, width: fits ? width : 1 };
}

export function storageOf(access: OperandAccess): StorageDtype {
  return access.width === 4 ? 'f32x4' : access.dtype;
}

/** The two halves of a u32 word, widened (WGSL has no bf16: its bits are the top of an f32). */
export function unpackHalves(dtype: 'f16' | 'bf16', word: string): string {
  return dtype === 'f16'
    ? `unpack2x16float(${word})`
    : `vec2<f32>(bitcast<f32>(${word} << 16u), bitcast<f32>(${word} & 0xffff0000u))`;
}

/** WGSL `fn <name>(i: u32)` returning the `width` elements from element i on (vec4 / vec2 / f32). */
export function vectorLoader(name: string, buffer: string, access: OperandAccess): string {
  if (access.width === 4) return `fn ${name}(i: u32) -> vec4<f32> { return ${buffer}[i >> 2u]; }`;
  if (access.width === 2 && access.dtype !== 'f32') {
    return `fn ${name}(i: u32) -> vec2<f32> { let w = ${buffer}[i >> 1u]; return ${unpackHalves(access.dtype, 'w')}; }`;
  }
  return wgslLoader(name, buffer, access.dtype);
}

/** The uniforms every GEMM kernel takes (the legacy one in gemm.ts too). */
export const GEMM_PARAMS: KernelDef['params'] = {
  m: 'u32',
  n: 'u32',
  k: 'u32',
  lda: 'u32',
  ldb: 'u32',
  ldc: 'u32',
  alpha: 'f32',
  beta: 'f32',
};

const kernels = new Map<string, KernelDef>();

/** Builds each kernel once per process (`build` gets the kernel's key, shown in Dawn's messages). */
function cachedKernel(key: string, build: (key: string) => KernelDef): KernelDef {
  let def = kernels.get(key);
  if (!def) {
    def = build(key);
    kernels.set(key, def);
  }
  return def;
}

/** The kernel of a GEMM variant, built by its family's `build` once per process. */
export function gemmVariantKernel<Tile extends GemmTile>(
  v: GemmVariant<Tile>,
  build: (key: string, v: GemmVariant<Tile>) => KernelDef,
): KernelDef {
  const layout = `${v.transA ? 't' : 'n'}${v.transB ? 't' : 'n'}:${v.a.dtype}${v.a.width}:${v.b.dtype}${v.b.width}`;
  const key = `gemm:${tileName(v.tile)}:${layout}:${v.bias ? 'bias' : ''}:${v.partial ? 'part' : ''}`;
  return cachedKernel(key, (key) => build(key, v));
}

export const tiledGemmKernel = (v: GemmVariant<StagedTile>) => gemmVariantKernel(v, buildKernel);

/** The uniforms and buffers every tuned GEMM kernel takes (split-K's chunk and slab stride too). */
export function gemmInterface(v: GemmVariant): Pick<KernelDef, 'params' | 'buffers'> {
  return {
    params: {
      ...GEMM_PARAMS,
      kchunk: 'u32',
      /** Elements between the split-K slabs of `c` (the partial products of one k chunk). */
      slab: 'u32',
    },
    buffers: [
      { name: 'a', dtype: storageOf(v.a), access: 'read' },
      { name: 'b', dtype: storageOf(v.b), access: 'read' },
      { name: 'c', dtype: 'f32', access: 'read_write' },
      ...(v.bias ? [{ name: 'bias', dtype: 'f32' as const, access: 'read' as const }] : []),
    ],
  };
}

/** WGSL for an operand binding's offset in elements (a vec4 binding's counts vec4s; loaders take elements). */
export function bindingElementOffset(binding: 'a' | 'b', access: OperandAccess): string {
  return access.width === 4 ? `(P.${binding}_off * 4u)` : `P.${binding}_off`;
}

/**
 * WGSL that finishes one element of C from `value` (its unscaled product) at `cBase + col`:
 * alpha, beta * C and the bias, or alpha alone into a split-K slab.
 */
export function epilogueWgsl(partial: boolean, bias: boolean): string {
  return partial
    ? `c[cBase + col] = P.alpha * value;`
    : `var out = P.alpha * value;
        if (P.beta != 0.0) { out += P.beta * c[cBase + col]; }
        ${bias ? 'out += bias[P.bias_off + col];' : ''}
        c[cBase + col] = out;`;
}

/**
 * WGSL that stages one operand's `bk x outer` slice into workgroup memory, `width` elements per
 * load along the stored (contiguous) dimension. `kContiguous`: k is the stored rows' contiguous
 * dimension. Expects `tid`, `k0`, `kEnd` and the tile origin (`outerStart`) in scope.
 */
export function stageOperand(o: {
  name: 'A' | 'B';
  access: OperandAccess;
  kContiguous: boolean;
  /** Tile extent along the operand's non-k dimension. */
  outer: number;
  bk: number;
  threads: number;
  /** WGSL expressions: the operand's extent along its non-k dimension, the tile origin there. */
  outerLimit: string;
  outerStart: string;
  ld: string;
  store: (kk: string, oo: string, value: string) => string;
  /** A whole vec4 store, when the tile layout holds four contiguous elements as one vec4. */
  storeVec4?: (kk: string, oo: string, value: string) => string;
}): string {
  const w = o.access.width;
  const off = bindingElementOffset(o.name === 'A' ? 'a' : 'b', o.access);
  const contiguous = o.kContiguous ? o.bk : o.outer;
  const loads = (o.bk * o.outer) / w;
  const perThread = Math.ceil(loads / o.threads);
  // Only the last round can run past the tile; those threads skip their load.
  const lastGuard = loads % o.threads === 0 ? 'true' : `idx < ${loads}u`;
  const c = `(idx % ${contiguous / w}u) * ${w}u`;
  const s = `idx / ${contiguous / w}u`;
  const [kk, oo] = o.kContiguous ? [c, s] : [s, c];
  const lanes = w === 1 ? ['value'] : ['value.x', 'value.y', 'value.z', 'value.w'].slice(0, w);
  const zero = w === 1 ? '0.0' : `vec${w}<f32>()`;
  const stores =
    o.storeVec4 && !o.kContiguous && w === 4
      ? o.storeVec4('kk', 'oo', 'value')
      : lanes
          .map((lane, i) =>
            o.kContiguous ? o.store(`kk + ${i}u`, 'oo', lane) : o.store('kk', `oo + ${i}u`, lane),
          )
          .join(' ');
  // Unrolled by generation (see the accumulators in buildKernel).
  return Array.from(
    { length: perThread },
    (_, e) => `{
      let idx = tid + ${e * o.threads}u;
      if (${e === perThread - 1 ? lastGuard : 'true'}) {
      let kk = ${kk};
      let oo = ${oo};
      let kg = k0 + kk;
      let og = ${o.outerStart} + oo;
      var value = ${zero};
      if (kg < kEnd && og < ${o.outerLimit}) {
        value = load${o.name}(${off} + ${o.kContiguous ? `og * ${o.ld} + kg` : `kg * ${o.ld} + og`});
      }
      ${stores}
      }
    }`,
  ).join('\n');
}

function buildKernel(key: string, v: GemmVariant<StagedTile>): KernelDef {
  const { wgX, wgY, tm, tn, bk, f16, sg } = v.tile;
  const BM = wgY * tm;
  const BN = wgX * tn;
  const threads = wgX * wgY;
  const T = f16 ? 'f16' : 'f32';
  const cast = (x: string) => (f16 ? `f16(${x})` : x);
  const tn4 = tn / 4;
  const stageA = stageOperand({
    name: 'A',
    access: v.a,
    kContiguous: !v.transA,
    outer: BM,
    bk,
    threads,
    outerLimit: 'P.m',
    outerStart: 'm0',
    ld: 'P.lda',
    store: (kk, mm, value) => `tA[(${kk}) * ${BM}u + ${mm}] = ${cast(value)};`,
  });
  const stageB = stageOperand({
    name: 'B',
    access: v.b,
    kContiguous: v.transB,
    outer: BN,
    bk,
    threads,
    outerLimit: 'P.n',
    outerStart: 'n0',
    ld: 'P.ldb',
    store: (kk, nn, value) => {
      const flat = `(${kk}) * ${BN}u + ${nn}`;
      return `{ let f = ${flat}; tB[f >> 2u][f & 3u] = ${cast(value)}; }`;
    },
    storeVec4: (kk, nn, value) => `tB[((${kk}) * ${BN}u + ${nn}) >> 2u] = vec4<${T}>(${value});`,
  });
  const epilogue = epilogueWgsl(v.partial, v.bias);
  // Unrolled by generation, so every accumulator is a named register whatever the WGSL
  // compiler's unrolling limits (a dynamically indexed private array would live in memory).
  const acc = (i: number, j: number) => `acc${i}_${j}`;
  const accumulators = range(tm)
    .flatMap((i) => range(tn4).map((j) => `var ${acc(i, j)} = vec4<f32>();`))
    .join(' ');
  const inner = [
    ...range(tn4).map(
      (j) => `let b${j} = vec4<f32>(tB[kk * ${BN / 4}u + lid.x * ${tn4}u + ${j}u]);`,
    ),
    `let aBase = kk * ${BM}u + lid.y * ${tm}u;`,
    ...range(tm).map((i) => `var a${i}: f32;`),
    ...(sg
      ? [
          `if (sgShare) {`,
          `  let mine = f32(tA[aBase + sgLane % ${tm}u]);`,
          ...range(tm).map((i) => `  a${i} = subgroupBroadcast(mine, ${i}u);`),
          `} else {`,
          ...range(tm).map((i) => `  a${i} = f32(tA[aBase + ${i}u]);`),
          `}`,
        ]
      : range(tm).map((i) => `a${i} = f32(tA[aBase + ${i}u]);`)),
    ...range(tm).flatMap((i) =>
      range(tn4).map((j) => `${acc(i, j)} = fma(vec4<f32>(a${i}), b${j}, ${acc(i, j)});`),
    ),
  ].join('\n      ');
  const stores = range(tm)
    .map(
      (i) => `{
    let row = m0 + lid.y * ${tm}u + ${i}u;
    if (row < P.m) {
      let cBase = cOff + row * P.ldc;
      ${range(tn)
        .map(
          (j) => `if (colBase + ${j}u < P.n) {
        let col = colBase + ${j}u;
        let value = ${acc(i, j >> 2)}[${j & 3}];
        ${epilogue}
      }`,
        )
        .join('\n      ')}
    }
  }`,
    )
    .join('\n  ');
  return {
    key,
    ...gemmInterface(v),
    workgroupSize: [wgX, wgY],
    directives: [
      ...(f16 ? ['enable f16;'] : []),
      // The broadcasts sit under a subgroup-uniform branch the analysis cannot see as uniform.
      ...(sg ? ['enable subgroups;', 'diagnostic(off, subgroup_uniformity);'] : []),
    ],
    builtins: sg
      ? ['@builtin(subgroup_invocation_id) sgLane: u32', '@builtin(subgroup_size) sgSize: u32']
      : [],
    prelude: `
${vectorLoader('loadA', 'a', v.a)}
${vectorLoader('loadB', 'b', v.b)}
var<workgroup> tA: array<${T}, ${bk * BM}>;      // [kk][mm]
var<workgroup> tB: array<vec4<${T}>, ${(bk * BN) / 4}>; // [kk][nn / 4]
`,
    body: `
  let tid = lid.y * ${wgX}u + lid.x;
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  let kBegin = wid.z * P.kchunk;
  let kEnd = min(P.k, kBegin + P.kchunk);
  ${sg ? `let sgShare = sgSize >= ${tm}u && subgroupAll(lid.y == subgroupBroadcastFirst(lid.y));` : ''}
  ${accumulators}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${stageA}
    ${stageB}
    workgroupBarrier();
    for (var kk = 0u; kk < ${bk}u; kk++) {
      ${inner}
    }
    workgroupBarrier();
  }
  let cOff = P.c_off + wid.z * P.slab;
  let colBase = n0 + lid.x * ${tn}u;
  ${stores}
`,
  };
}

/** Sums `splits` slabs of `m x n` partial products into C (ldc), with beta * C and bias. */
export function splitKReduceKernel(bias: boolean): KernelDef {
  return cachedKernel(`gemm-splitk-reduce:${bias ? 'bias' : ''}`, (key) => ({
    key,
    params: { m: 'u32', n: 'u32', ldc: 'u32', beta: 'f32', splits: 'u32', rowGroups: 'u32' },
    buffers: [
      { name: 'part', dtype: 'f32', access: 'read' },
      { name: 'c', dtype: 'f32', access: 'read_write' },
      ...(bias ? [{ name: 'bias', dtype: 'f32' as const, access: 'read' as const }] : []),
    ],
    workgroupSize: [64],
    body: `
  let col = wid.x * 64u + lid.x;
  if (col >= P.n) { return; }
  for (var row = wid.y; row < P.m; row += P.rowGroups) {
    var sum = 0.0;
    for (var s = 0u; s < P.splits; s++) { sum += part[P.part_off + (s * P.m + row) * P.n + col]; }
    let ci = P.c_off + row * P.ldc + col;
    if (P.beta != 0.0) { sum += P.beta * c[ci]; }
    ${bias ? 'sum += bias[P.bias_off + col];' : ''}
    c[ci] = sum;
  }
`,
  }));
}
