/**
 * GEMM: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C + bias[n], row-major with leading
 * dimensions (elements between rows as stored). A and B may be stored as f32, f16 or bf16 and are
 * widened to f32 in the shader; C and bias are f32.
 *
 * Two kernel families: the tuned kernels (register-tiled gemm-tiled.ts, direct gemm-direct.ts and
 * subgroup-matrix gemm-matrix.ts; a tile shape per class of problem, picked by the tuner, with
 * split-K for skinny problems) and the first kernel this backend had (`legacy`: one 64x64 tile
 * per 16x16 workgroup, scalar loads), kept as the benchmark baseline and as a second opinion in
 * tests.
 *
 * Legacy kernel: every thread keeps a 4x4 block of accumulators in registers, reading 4 A and 4 B
 * values from workgroup memory per k step (16 multiply-adds per 8 loads). Thread rows/columns are
 * strided by 16 so neighbouring threads touch neighbouring addresses when loading and storing.
 */
import { wgslLoader, type KernelDef, type StorageDtype } from './kernel-def.ts';
import { advance, refBuffer, refOffset, type BufferRef } from './buffer-ref.ts';
import type { KernelRunner } from './runner.ts';
import {
  blockCols,
  blockRows,
  GEMM_PARAMS,
  operandAccess,
  splitKReduceKernel,
  tiledGemmKernel,
  type GemmTile,
} from './gemm-tiled.ts';
import { directAccess, directGemmKernel } from './gemm-direct.ts';
import { matrixGemmKernel } from './gemm-matrix.ts';

export type GemmDtype = 'f32' | 'f16' | 'bf16';

export interface GemmArgs {
  a: BufferRef;
  b: BufferRef;
  c: BufferRef;
  bias?: BufferRef | null;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** 0 means C is write-only (never read, so it may hold garbage). */
  beta?: number;
  aDtype?: GemmDtype;
  bDtype?: GemmDtype;
  /** Leading dimensions; default to the dense layout (A: transA ? m : k, B: transB ? k : n, C: n). */
  lda?: number;
  ldb?: number;
  ldc?: number;
}

const TILE = 64;
const TILE_K = 16;
const THREADS = 16;
const PER_THREAD = TILE / THREADS;

const kernels = new Map<string, KernelDef>();

/** GEMMs are the most frequent dispatch, so their definitions are built once per variant. */
function cachedGemmKernel(...variant: Parameters<typeof gemmKernel>): KernelDef {
  const key = variant.join(':');
  let def = kernels.get(key);
  if (!def) {
    def = gemmKernel(...variant);
    kernels.set(key, def);
  }
  return def;
}

function gemmKernel(
  transA: boolean,
  transB: boolean,
  aDtype: StorageDtype,
  bDtype: StorageDtype,
  bias: boolean,
): KernelDef {
  // Which tile coordinate varies fastest between consecutive loader threads follows the stored
  // layout, so global reads are contiguous.
  const aTileCoords = transA
    ? `let kk = idx / ${TILE}u; let mm = idx % ${TILE}u;`
    : `let mm = idx / ${TILE_K}u; let kk = idx % ${TILE_K}u;`;
  const aIndex = transA ? 'col * P.lda + row' : 'row * P.lda + col';
  const bTileCoords = transB
    ? `let nn = idx / ${TILE_K}u; let kk = idx % ${TILE_K}u;`
    : `let kk = idx / ${TILE}u; let nn = idx % ${TILE}u;`;
  const bIndex = transB ? 'col * P.ldb + row' : 'row * P.ldb + col';
  return {
    key: `gemm:${transA ? 't' : 'n'}${transB ? 't' : 'n'}:${aDtype}:${bDtype}:${bias ? 'bias' : ''}`,
    params: GEMM_PARAMS,
    buffers: [
      { name: 'a', dtype: aDtype, access: 'read' },
      { name: 'b', dtype: bDtype, access: 'read' },
      { name: 'c', dtype: 'f32', access: 'read_write' },
      ...(bias ? [{ name: 'bias', dtype: 'f32' as const, access: 'read' as const }] : []),
    ],
    workgroupSize: [THREADS, THREADS],
    prelude: `
${wgslLoader('loadA', 'a', aDtype)}
${wgslLoader('loadB', 'b', bDtype)}
var<workgroup> tileA: array<f32, ${TILE_K * TILE}>; // [kk][mm]
var<workgroup> tileB: array<f32, ${TILE_K * TILE}>; // [kk][nn]
`,
    body: `
  let tid = lid.y * ${THREADS}u + lid.x;
  let m0 = wid.y * ${TILE}u;
  let n0 = wid.x * ${TILE}u;
  var acc: array<array<f32, ${PER_THREAD}>, ${PER_THREAD}>;
  for (var k0 = 0u; k0 < P.k; k0 += ${TILE_K}u) {
    for (var e = 0u; e < ${(TILE * TILE_K) / (THREADS * THREADS)}u; e++) {
      let idx = tid + e * ${THREADS * THREADS}u;
      {
        ${aTileCoords}
        let row = m0 + mm;
        let col = k0 + kk;
        var value = 0.0;
        if (row < P.m && col < P.k) { value = loadA(P.a_off + ${aIndex}); }
        tileA[kk * ${TILE}u + mm] = value;
      }
      {
        ${bTileCoords}
        let row = k0 + kk;
        let col = n0 + nn;
        var value = 0.0;
        if (row < P.k && col < P.n) { value = loadB(P.b_off + ${bIndex}); }
        tileB[kk * ${TILE}u + nn] = value;
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      var av: array<f32, ${PER_THREAD}>;
      var bv: array<f32, ${PER_THREAD}>;
      for (var i = 0u; i < ${PER_THREAD}u; i++) {
        av[i] = tileA[kk * ${TILE}u + lid.y + i * ${THREADS}u];
        bv[i] = tileB[kk * ${TILE}u + lid.x + i * ${THREADS}u];
      }
      for (var i = 0u; i < ${PER_THREAD}u; i++) {
        for (var j = 0u; j < ${PER_THREAD}u; j++) {
          acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${PER_THREAD}u; i++) {
    let row = m0 + lid.y + i * ${THREADS}u;
    if (row >= P.m) { continue; }
    for (var j = 0u; j < ${PER_THREAD}u; j++) {
      let col = n0 + lid.x + j * ${THREADS}u;
      if (col >= P.n) { continue; }
      let ci = P.c_off + row * P.ldc + col;
      var value = P.alpha * acc[i][j];
      if (P.beta != 0.0) { value += P.beta * c[ci]; }
      ${bias ? 'value += bias[P.bias_off + col];' : ''}
      c[ci] = value;
    }
  }
`,
  };
}

interface GemmProblem extends Required<Omit<GemmArgs, 'bias'>> {
  bias: BufferRef | null;
}

const elementBytes = (dtype: GemmDtype) => (dtype === 'f32' ? 4 : 2);

/** Bytes of the range a strided operand occupies: `rows` rows of `cols` elements, `ld` apart. */
function spanBytes(rows: number, cols: number, ld: number, itemBytes: number): number {
  return rows === 0 || cols === 0 ? 0 : ((rows - 1) * ld + cols) * itemBytes;
}

/** Problem classes that get their own tile shape: few rows (decode, LoRA's r x n), few columns (x A^T), the rest. */
export type GemmShapeClass = 'large' | 'rows' | 'cols';

export const SKINNY = 16;

export function shapeClass(m: number, n: number): GemmShapeClass {
  if (m <= SKINNY) return 'rows';
  if (n <= SKINNY) return 'cols';
  return 'large';
}

/** Which kernels GEMMs run: the legacy kernel, or a tile shape per problem class. */
export type GemmPlan =
  { legacy: true } | { legacy: false; tiles: Record<GemmShapeClass, GemmTile> };

/** Tile shapes used when no tuner has chosen (plain f32 tiles every adapter runs: 128 threads, 12 KiB). */
export const DEFAULT_TILES: Record<GemmShapeClass, GemmTile> = {
  large: { kind: 'staged', wgX: 8, wgY: 16, tm: 8, tn: 8, bk: 16, f16: false, sg: false },
  rows: { kind: 'staged', wgX: 32, wgY: 4, tm: 4, tn: 4, bk: 16, f16: false, sg: false },
  cols: { kind: 'staged', wgX: 4, wgY: 32, tm: 4, tn: 4, bk: 16, f16: false, sg: false },
};

export const DEFAULT_GEMM_PLAN: GemmPlan = { legacy: false, tiles: DEFAULT_TILES };

/** A plan that runs one tile for every class (forcing a tile, timing it, testing it). */
export const singleTilePlan = (tile: GemmTile): GemmPlan => ({
  legacy: false,
  tiles: { large: tile, rows: tile, cols: tile },
});

export const LEGACY_GEMM_PLAN: GemmPlan = { legacy: true };

export function gemm(
  runner: KernelRunner,
  args: GemmArgs,
  plan: GemmPlan = DEFAULT_GEMM_PLAN,
): void {
  const transA = args.transA ?? false;
  const transB = args.transB ?? false;
  const problem: GemmProblem = {
    ...args,
    bias: args.bias ?? null,
    transA,
    transB,
    alpha: args.alpha ?? 1,
    beta: args.beta ?? 0,
    aDtype: args.aDtype ?? 'f32',
    bDtype: args.bDtype ?? 'f32',
    lda: args.lda ?? (transA ? args.m : args.k),
    ldb: args.ldb ?? (transB ? args.k : args.n),
    ldc: args.ldc ?? args.n,
  };
  if (problem.m === 0 || problem.n === 0) return;
  splitToBindingLimit(runner, problem, plan);
}

/**
 * Operands larger than one storage binding (e.g. an LM head weight) are handled by halving the
 * dimension that is the stored outer (row) dimension of the oversized operand, recursively:
 * m for A (or k if transposed) and C, n for B (or k if not transposed). A k split runs the second
 * half with beta = 1 and no bias, accumulating onto the first half's result.
 */
function splitToBindingLimit(runner: KernelRunner, p: GemmProblem, plan: GemmPlan): void {
  // Leave room for the part of the range before an offset that is rounded down for alignment.
  const limit = runner.maxBindingBytes - runner.bindingAlignment;
  const ea = elementBytes(p.aDtype);
  const eb = elementBytes(p.bDtype);
  const aBytes = p.transA ? spanBytes(p.k, p.m, p.lda, ea) : spanBytes(p.m, p.k, p.lda, ea);
  const bBytes = p.transB ? spanBytes(p.n, p.k, p.ldb, eb) : spanBytes(p.k, p.n, p.ldb, eb);
  const cBytes = spanBytes(p.m, p.n, p.ldc, 4);
  const splitOf = (bytes: number, dim: 'm' | 'n' | 'k') =>
    bytes > limit && p[dim] > 1 ? dim : null;
  const dim =
    splitOf(cBytes, 'm') ??
    splitOf(aBytes, p.transA ? 'k' : 'm') ??
    splitOf(bBytes, p.transB ? 'n' : 'k');
  if (!dim) {
    if (plan.legacy) dispatchLegacy(runner, p);
    else dispatchTiled(runner, p, plan.tiles[shapeClass(p.m, p.n)]);
    return;
  }
  const first = Math.ceil(p[dim] / 2);
  const [lo, hi] = splitProblem(p, dim, first);
  splitToBindingLimit(runner, lo, plan);
  splitToBindingLimit(runner, hi, plan);
}

function splitProblem(
  p: GemmProblem,
  dim: 'm' | 'n' | 'k',
  first: number,
): [GemmProblem, GemmProblem] {
  const ea = elementBytes(p.aDtype);
  const eb = elementBytes(p.bDtype);
  const lo = { ...p, [dim]: first };
  const hi = { ...p, [dim]: p[dim] - first };
  if (dim === 'm') {
    hi.a = advance(p.a, (p.transA ? first : first * p.lda) * ea);
    hi.c = advance(p.c, first * p.ldc * 4);
  } else if (dim === 'n') {
    hi.b = advance(p.b, (p.transB ? first * p.ldb : first) * eb);
    hi.c = advance(p.c, first * 4);
    if (p.bias) hi.bias = advance(p.bias, first * 4);
  } else {
    hi.a = advance(p.a, (p.transA ? first * p.lda : first) * ea);
    hi.b = advance(p.b, (p.transB ? first : first * p.ldb) * eb);
    hi.beta = 1;
    hi.bias = null;
  }
  return [lo, hi];
}

/** Elements of A and B the problem touches, from each operand's offset. */
function operandElements(p: GemmProblem): { a: number; b: number } {
  const ea = elementBytes(p.aDtype);
  const eb = elementBytes(p.bDtype);
  return {
    a: (p.transA ? spanBytes(p.k, p.m, p.lda, ea) : spanBytes(p.m, p.k, p.lda, ea)) / ea,
    b: (p.transB ? spanBytes(p.n, p.k, p.ldb, eb) : spanBytes(p.k, p.n, p.ldb, eb)) / eb,
  };
}

/** Split-K aims for at least this many workgroups (a few waves on a large GPU)... */
const SPLIT_K_TARGET_GROUPS = 256;
/** ...with each chunk still this deep, so the partial sums stay a small share of the traffic. */
const SPLIT_K_MIN_CHUNK = 256;

function dispatchTiled(runner: KernelRunner, p: GemmProblem, tile: GemmTile): void {
  const { a: aElements, b: bElements } = operandElements(p);
  const cBuffer = refBuffer(p.c);
  // A vec4 binding cannot share a binding with C (different element types), and an empty
  // operand (k = 0) is below a vec4 binding's minimum size: both are read element by element.
  const access = (
    dtype: GemmDtype,
    ref: BufferRef,
    ld: number,
    extent: number,
    elements: number,
  ) =>
    refBuffer(ref) === cBuffer || elements === 0
      ? { dtype, width: 1 as const }
      : operandAccess(dtype, refOffset(ref) / elementBytes(dtype), ld, extent);
  let a = access(p.aDtype, p.a, p.lda, p.transA ? p.m : p.k, aElements);
  let b = access(p.bDtype, p.b, p.ldb, p.transB ? p.k : p.n, bElements);
  if (tile.kind === 'direct') {
    a = directAccess(a, !p.transA, tile.tm);
    b = directAccess(b, p.transB, tile.tn);
  }
  const groupsX = Math.ceil(p.n / blockCols(tile));
  const groupsY = Math.ceil(p.m / blockRows(tile));
  const maxSplitsByMemory = Math.floor(runner.maxBindingBytes / (p.m * p.n * 4));
  const wanted = Math.min(
    Math.ceil(SPLIT_K_TARGET_GROUPS / (groupsX * groupsY)),
    Math.floor(p.k / SPLIT_K_MIN_CHUNK),
    maxSplitsByMemory,
    runner.maxWorkgroupsPerDimension,
  );
  const kchunk = wanted > 1 ? Math.ceil(p.k / wanted / tile.bk) * tile.bk : Math.max(p.k, 1);
  const splits = Math.max(1, Math.ceil(p.k / kchunk));
  const partial = splits > 1;
  // A vec4 binding counts vec4s (its offset stays in bytes).
  const vecElements = (count: number, width: number) =>
    width === 4 ? Math.ceil(count / 4) : count;
  const part = partial ? runner.scratchBuffer('gemm-split-k', splits * p.m * p.n * 4) : null;
  const variant = {
    transA: p.transA,
    transB: p.transB,
    a,
    b,
    bias: p.bias !== null && !partial,
    partial,
  };
  const def =
    tile.kind === 'direct'
      ? directGemmKernel({ ...variant, tile })
      : tile.kind === 'matrix'
        ? matrixGemmKernel({ ...variant, tile })
        : tiledGemmKernel({ ...variant, tile });
  runner.dispatch(
    def,
    {
      a: { ref: p.a, elements: vecElements(aElements, a.width) },
      b: { ref: p.b, elements: vecElements(bElements, b.width) },
      c: part
        ? { ref: part, elements: splits * p.m * p.n }
        : { ref: p.c, elements: spanBytes(p.m, p.n, p.ldc, 4) / 4 },
      ...(p.bias && !partial ? { bias: { ref: p.bias, elements: p.n } } : {}),
    },
    {
      m: p.m,
      n: p.n,
      k: p.k,
      lda: p.lda,
      ldb: p.ldb,
      ldc: partial ? p.n : p.ldc,
      alpha: p.alpha,
      beta: p.beta,
      kchunk,
      slab: partial ? p.m * p.n : 0,
    },
    [groupsX, groupsY, splits],
  );
  if (!part) return;
  const rowGroups = Math.min(p.m, runner.maxWorkgroupsPerDimension);
  runner.dispatch(
    splitKReduceKernel(p.bias !== null),
    {
      part: { ref: part, elements: splits * p.m * p.n },
      c: { ref: p.c, elements: spanBytes(p.m, p.n, p.ldc, 4) / 4 },
      ...(p.bias ? { bias: { ref: p.bias, elements: p.n } } : {}),
    },
    { m: p.m, n: p.n, ldc: p.ldc, beta: p.beta, splits, rowGroups },
    [Math.ceil(p.n / 64), rowGroups],
  );
}

function dispatchLegacy(runner: KernelRunner, p: GemmProblem): void {
  const { a: aElements, b: bElements } = operandElements(p);
  const def = cachedGemmKernel(p.transA, p.transB, p.aDtype, p.bDtype, p.bias !== null);
  runner.dispatch(
    def,
    {
      a: { ref: p.a, elements: aElements },
      b: { ref: p.b, elements: bElements },
      c: { ref: p.c, elements: spanBytes(p.m, p.n, p.ldc, 4) / 4 },
      ...(p.bias ? { bias: { ref: p.bias, elements: p.n } } : {}),
    },
    { m: p.m, n: p.n, k: p.k, lda: p.lda, ldb: p.ldb, ldc: p.ldc, alpha: p.alpha, beta: p.beta },
    [Math.ceil(p.n / TILE), Math.ceil(p.m / TILE)],
  );
}
