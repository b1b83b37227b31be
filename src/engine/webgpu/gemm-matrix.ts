/**
 * Subgroup-matrix GEMM kernels (`chromium-experimental-subgroup-matrix`: Vulkan cooperative
 * matrices, Metal simdgroup matrices): C = alpha * op(A) op(B) + beta * C + bias.
 *
 * A subgroup multiplies whole M x K by K x N fragments in one instruction (tensor cores on NVIDIA,
 * XMX on Intel, simdgroup matrices on Apple), accumulating M x N f32 results. A workgroup of
 * `sgRows x sgCols` subgroups computes a `BM x BN` block of C (BM = sgRows * fm * M,
 * BN = sgCols * fn * N); each subgroup keeps `fm x fn` result fragments. k advances `bk` at a
 * time: all invocations stage a `bk x BM` slice of A (column-major, so a fragment is one strided
 * load) and a `bk x BN` slice of B (row-major) in workgroup memory, as the component type (f16 or
 * f32), loading storage with the staged kernels' vector loads (gemm-tiled.ts `stageOperand`).
 * Fragments cannot be stored partially or scaled in place, so at the end each subgroup passes its
 * results one fragment at a time through a fragment of workgroup memory of its own, from which
 * its invocations apply alpha, beta, bias and the m / n bounds (keeping the result staging small
 * leaves the workgroup memory to larger blocks). Split-K is that of the staged kernels.
 *
 * A kernel is built for one adapter configuration (component type, M, N, K) and subgroup size
 * (`lanes`): WGSL requires the workgroup's x size to be a multiple of the adapter's largest
 * subgroup, and the subgroup count is planned from it. An adapter that runs smaller subgroups
 * has more of them; those past the plan only help staging.
 */
import { range, type KernelDef } from './kernel-def.ts';
import {
  epilogueWgsl,
  gemmInterface,
  gemmVariantKernel,
  stageOperand,
  vectorLoader,
  type GemmVariant,
} from './gemm-tiled.ts';

/** A subgroup-matrix shape an adapter offers (GPUSubgroupMatrixConfig), f32 results only. */
export interface MatrixConfig {
  component: 'f16' | 'f32';
  M: number;
  N: number;
  K: number;
}

export interface MatrixTile extends MatrixConfig {
  kind: 'matrix';
  /** Subgroups along m and along n. */
  sgRows: number;
  sgCols: number;
  /** Result fragments per subgroup along m and along n. */
  fm: number;
  fn: number;
  /** k depth staged per step (a multiple of K). */
  bk: number;
  /** Invocations per subgroup the workgroup is planned for (the adapter's largest subgroup). */
  lanes: number;
}

/** `sm8x8x8.f16.2x2.2x2.k32.l8`: fragment M x N x K, component, subgroups, fragments each, k depth, lanes. */
export function matrixTileName(t: MatrixTile): string {
  return `sm${t.M}x${t.N}x${t.K}.${t.component}.${t.sgRows}x${t.sgCols}.${t.fm}x${t.fn}.k${t.bk}.l${t.lanes}`;
}

export function parseMatrixTileName(name: string): MatrixTile | null {
  const match = /^sm(\d+)x(\d+)x(\d+)\.(f16|f32)\.(\d+)x(\d+)\.(\d+)x(\d+)\.k(\d+)\.l(\d+)$/.exec(
    name,
  );
  if (!match) return null;
  const [M, N, K] = match.slice(1, 4).map(Number) as [number, number, number];
  const [sgRows, sgCols, fm, fn, bk, lanes] = match.slice(5).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (bk % K !== 0) return null;
  const component = match[4] as 'f16' | 'f32';
  return { kind: 'matrix', component, M, N, K, sgRows, sgCols, fm, fn, bk, lanes };
}

export const matrixBlockRows = (t: MatrixTile) => t.sgRows * t.fm * t.M;
export const matrixBlockCols = (t: MatrixTile) => t.sgCols * t.fn * t.N;
export const matrixThreads = (t: MatrixTile) => t.sgRows * t.sgCols * t.lanes;

/** Workgroup memory a tile's kernel declares: the staged slices and a result fragment per subgroup. */
export function matrixWorkgroupBytes(t: MatrixTile): number {
  const item = t.component === 'f16' ? 2 : 4;
  return (
    t.bk * (matrixBlockRows(t) + matrixBlockCols(t)) * item + t.sgRows * t.sgCols * t.M * t.N * 4
  );
}

export const matrixGemmKernel = (v: GemmVariant<MatrixTile>) => gemmVariantKernel(v, buildKernel);

function buildKernel(key: string, v: GemmVariant<MatrixTile>): KernelDef {
  const { component: T, M, N, K, sgRows, sgCols, fm, fn, bk } = v.tile;
  const BM = matrixBlockRows(v.tile);
  const BN = matrixBlockCols(v.tile);
  const threads = matrixThreads(v.tile);
  const stage = (name: 'A' | 'B') =>
    stageOperand({
      name,
      access: name === 'A' ? v.a : v.b,
      kContiguous: name === 'A' ? !v.transA : v.transB,
      outer: name === 'A' ? BM : BN,
      bk,
      threads,
      outerLimit: name === 'A' ? 'P.m' : 'P.n',
      outerStart: name === 'A' ? 'm0' : 'n0',
      ld: name === 'A' ? 'P.lda' : 'P.ldb',
      // A column-major [kk][mm] (a left fragment is M consecutive rows per k), B row-major [kk][nn].
      store: (kk, oo, value) =>
        `t${name}[(${kk}) * ${name === 'A' ? BM : BN}u + ${oo}] = ${T}(${value});`,
    });
  const fragments = range(fm).flatMap((i) => range(fn).map((j) => [i, j] as const));
  const left = `subgroup_matrix_left<${T}, ${K}, ${M}>`;
  const right = `subgroup_matrix_right<${T}, ${N}, ${K}>`;
  const result = `subgroup_matrix_result<f32, ${N}, ${M}>`;
  return {
    key,
    ...gemmInterface(v),
    workgroupSize: [threads],
    directives: [
      ...(T === 'f16' ? ['enable f16;'] : []),
      'enable subgroups;',
      'enable chromium_experimental_subgroup_matrix;',
      // The fragment work sits under `sid < planned`, uniform per subgroup (subgroup_id is) but not
      // per workgroup, which is all the analysis can prove.
      'diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);',
    ],
    builtins: [
      '@builtin(subgroup_id) sid: u32',
      '@builtin(subgroup_invocation_id) sgLane: u32',
      '@builtin(subgroup_size) sgSize: u32',
    ],
    prelude: `
${vectorLoader('loadA', 'a', v.a)}
${vectorLoader('loadB', 'b', v.b)}
var<workgroup> tA: array<${T}, ${bk * BM}>;   // [kk][mm]
var<workgroup> tB: array<${T}, ${bk * BN}>;   // [kk][nn]
var<workgroup> tC: array<f32, ${sgRows * sgCols * M * N}>; // a result fragment per subgroup
`,
    body: `
  let tid = lid.x;
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  let kBegin = wid.z * P.kchunk;
  let kEnd = min(P.k, kBegin + P.kchunk);
  let working = sid < ${sgRows * sgCols}u;
  let rowFrag = (sid / ${sgCols}u) * ${fm * M}u;
  let colFrag = (sid % ${sgCols}u) * ${fn * N}u;
  ${fragments.map(([i, j]) => `var acc${i}_${j} = ${result}();`).join('\n  ')}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${bk}u) {
    ${stage('A')}
    ${stage('B')}
    workgroupBarrier();
    if (working) {
      for (var kk = 0u; kk < ${bk}u; kk += ${K}u) {
        ${range(fm)
          .map(
            (i) =>
              `let l${i} = subgroupMatrixLoad<${left}, col_major>(&tA, kk * ${BM}u + rowFrag + ${i * M}u, ${BM}u);`,
          )
          .join('\n        ')}
        ${range(fn)
          .map(
            (j) =>
              `let r${j} = subgroupMatrixLoad<${right}, row_major>(&tB, kk * ${BN}u + colFrag + ${j * N}u, ${BN}u);`,
          )
          .join('\n        ')}
        ${fragments
          .map(
            ([i, j]) =>
              `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`,
          )
          .join('\n        ')}
      }
    }
    workgroupBarrier();
  }
  let cOff = P.c_off + wid.z * P.slab;
  let scratch = sid * ${M * N}u;
  ${fragments
    .map(
      ([i, j]) => `if (working) {
    subgroupMatrixStore<row_major>(&tC, scratch, acc${i}_${j}, ${N}u);
  }
  workgroupBarrier();
  if (working) {
    for (var e = sgLane; e < ${M * N}u; e += sgSize) {
      let row = m0 + rowFrag + ${i * M}u + e / ${N}u;
      let col = n0 + colFrag + ${j * N}u + e % ${N}u;
      if (row < P.m && col < P.n) {
        let cBase = cOff + row * P.ldc;
        let value = tC[scratch + e];
        ${epilogueWgsl(v.partial, v.bias)}
      }
    }
  }
  workgroupBarrier();`,
    )
    .join('\n  ')}
`,
  };
}
