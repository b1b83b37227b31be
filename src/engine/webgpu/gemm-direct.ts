/**
 * Direct GEMM kernels (no workgroup memory, no barriers): C = alpha * op(A) op(B) + beta * C + bias.
 *
 * A workgroup of `threads` invocations owns `tm` rows of C; invocation x owns `tn` consecutive
 * columns of those rows and keeps their tm x tn sums in registers. Every invocation of a
 * workgroup reads the same A values (addresses that depend only on the workgroup and the loop),
 * so a compiler that tracks uniformity loads each once and broadcasts it; B is read straight from
 * storage along its contiguous dimension, up to four elements per load.
 *
 * This is the shape CPU adapters (lavapipe, SwiftShader) reward: they run a workgroup's
 * invocations in SIMD lanes on one core, where a workgroup barrier switches coroutines, so staging
 * tiles in workgroup memory (gemm-tiled.ts) costs more than it saves. Lavapipe (Mesa 25) also
 * turns every storage load inside a loop into a per-lane scalar loop with a bounds check, even
 * when all lanes share the address; with `sgA` the A block of a step is therefore loaded one
 * element per lane and handed to every lane by subgroupBroadcast (sharedABlock), which divides
 * A's load work by the subgroup size. On a GPU the staged kernels win (their operands come from
 * fast shared memory); the tuner chooses per adapter.
 *
 * k advances `bk` at a time (a scalar tail takes the rest); rows past m and columns past n are
 * clamped to the last valid one for loading (so vector loads stay in bounds) and not stored.
 * Split-K and the epilogue are those of the staged kernels (see gemm-tiled.ts).
 */
import { range, wgslLoader, type KernelDef } from './kernel-def.ts';
import {
  bindingElementOffset,
  epilogueWgsl,
  gemmInterface,
  gemmVariantKernel,
  vectorLoader,
  type GemmVariant,
  type OperandAccess,
} from './gemm-tiled.ts';

/** k elements per step of the direct kernels' main loop (a multiple of every load width). */
export const DIRECT_K_STEP = 4;

export interface DirectTile {
  kind: 'direct';
  /** Invocations per workgroup (all along n). */
  threads: number;
  /** Rows per workgroup (shared by its invocations) and columns per invocation. */
  tm: number;
  tn: number;
  /** k elements per step of the main loop: DIRECT_K_STEP (deeper steps measured slower). */
  bk: number;
  /**
   * 0, or the subgroup size the kernel is built for (needs `subgroups`, and an adapter whose
   * subgroups are exactly that size): the A values of a step, the same for every invocation,
   * are then loaded one per lane and handed to all lanes by subgroupBroadcast. On lavapipe a
   * load inside a loop is a per-lane scalar loop even at a uniform address, so this cuts A's
   * load work by the subgroup size.
   */
  sgA: number;
}

/**
 * The load an operand may use in a direct kernel: along k any width (they divide the step);
 * along the other dimension only one that divides the tile's extent there.
 */
export function directAccess(
  access: OperandAccess,
  kContiguous: boolean,
  outerExtent: number,
): OperandAccess {
  return kContiguous || outerExtent % access.width === 0
    ? access
    : { dtype: access.dtype, width: 1 };
}

export const directGemmKernel = (v: GemmVariant<DirectTile>) => gemmVariantKernel(v, buildKernel);

/**
 * WGSL `let` statements loading an operand's `outer x kSteps` block, and the expression of each
 * element: `values[o][kk]`. Loads run along the stored contiguous dimension, `width` at a time;
 * `outerIndex(o)` is the (already clamped) index along the non-k dimension for the k-contiguous
 * layout, and `outerStart(o)` the clamped start of the load holding element o otherwise.
 */
function loadBlock(o: {
  name: 'a' | 'b';
  access: OperandAccess;
  kContiguous: boolean;
  outer: number;
  kSteps: number;
  ld: string;
  /** WGSL: the first outer index and its limit (the operand's extent along it). */
  outerFirst: string;
  outerLimit: string;
  k: string;
}): { code: string[]; values: string[][] } {
  const w = o.kContiguous ? Math.min(o.access.width, o.kSteps) : o.access.width;
  const load = (index: string) => `${o.name}${w}(${index})`;
  const lane = (name: string, i: number) => (w === 1 ? name : `${name}[${i}]`);
  const code: string[] = [];
  const values = range(o.outer).map(() => [] as string[]);
  if (o.kContiguous) {
    for (const r of range(o.outer)) {
      code.push(
        `let ${o.name}r${r} = min(${o.outerFirst} + ${r}u, ${o.outerLimit} - 1u) * ${o.ld};`,
      );
      for (let kk = 0; kk < o.kSteps; kk += w) {
        const name = `${o.name}${r}_${kk}`;
        code.push(`let ${name} = ${load(`${o.name}Off + ${o.name}r${r} + ${o.k} + ${kk}u`)};`);
        for (const i of range(w)) values[r]![kk + i] = lane(name, i);
      }
    }
  } else {
    for (const kk of range(o.kSteps)) {
      for (let r = 0; r < o.outer; r += w) {
        const name = `${o.name}${r}_${kk}`;
        const start = `min(${o.outerFirst} + ${r}u, ${o.outerLimit} - ${w}u)`;
        code.push(
          `let ${name} = ${load(`${o.name}Off + (${o.k} + ${kk}u) * ${o.ld} + ${start}`)};`,
        );
        for (const i of range(w)) values[r + i]![kk] = lane(name, i);
      }
    }
  }
  return { code, values };
}

/**
 * The `tm x kSteps` block of A, the same for every invocation, through a subgroup of `size`
 * lanes: lane l loads elements l, l + size, ... of the block (row-major over rows x k, the last
 * one repeated past the end) and subgroupBroadcast hands each element to every lane.
 */
function sharedABlock(
  v: GemmVariant<DirectTile>,
  size: number,
  kSteps: number,
  k: string,
): { code: string[]; values: string[][] } {
  const count = v.tile.tm * kSteps;
  const code: string[] = [];
  for (let r = 0; r * size < count; r++) {
    const j = `aj${r}`;
    code.push(`let ${j} = min(${r * size}u + sgLane, ${count - 1}u);`);
    const row = `min(m0 + ${j} / ${kSteps}u, P.m - 1u)`;
    const kk = `${k} + ${j} % ${kSteps}u`;
    const index = v.transA ? `(${kk}) * P.lda + ${row}` : `${row} * P.lda + ${kk}`;
    code.push(`let al${r} = a1(aOff + ${index});`);
  }
  const values = range(v.tile.tm).map((i) =>
    range(kSteps).map((kk) => {
      const j = i * kSteps + kk;
      return `subgroupBroadcast(al${Math.floor(j / size)}, ${j % size}u)`;
    }),
  );
  return { code, values };
}

/**
 * The loop body for `kSteps` k values from WGSL index `k`: loads, then the tm x tn multiply-adds,
 * one k value at a time (each accumulator still adds its products in k order).
 */
function step(v: GemmVariant<DirectTile>, kSteps: number, k: string): string {
  const { tm, tn, sgA } = v.tile;
  const a = sgA
    ? sharedABlock(v, sgA, kSteps, k)
    : loadBlock({
        name: 'a',
        access: v.a,
        kContiguous: !v.transA,
        outer: tm,
        kSteps,
        ld: 'P.lda',
        outerFirst: 'm0',
        outerLimit: 'P.m',
        k,
      });
  const b = loadBlock({
    name: 'b',
    access: v.b,
    kContiguous: v.transB,
    outer: tn,
    kSteps,
    ld: 'P.ldb',
    outerFirst: 'n0',
    outerLimit: 'P.n',
    k,
  });
  const fmas = range(kSteps).flatMap((kk) =>
    range(tm).flatMap((i) =>
      range(tn).map(
        (j) => `acc${i}_${j} = fma(${a.values[i]![kk]}, ${b.values[j]![kk]}, acc${i}_${j});`,
      ),
    ),
  );
  return [...a.code, ...b.code, ...fmas].join('\n    ');
}

/** WGSL loaders `<name>1` (one element) and `<name><width>` (a vector) for an operand. */
function loaders(name: 'a' | 'b', access: OperandAccess): string {
  const scalar =
    access.width === 4
      ? `fn ${name}1(i: u32) -> f32 { return ${name}[i >> 2u][i & 3u]; }`
      : wgslLoader(`${name}1`, name, access.dtype);
  return access.width === 1
    ? scalar
    : `${scalar}\n${vectorLoader(`${name}${access.width}`, name, access)}`;
}

function buildKernel(key: string, v: GemmVariant<DirectTile>): KernelDef {
  const { threads, tm, tn, bk } = v.tile;
  const epilogue = epilogueWgsl(v.partial, v.bias);
  const stores = range(tm).map(
    (i) => `if (m0 + ${i}u < P.m) {
    let cBase = cOff + (m0 + ${i}u) * P.ldc;
    ${range(tn)
      .map(
        (j) => `if (n0 + ${j}u < P.n) {
      let col = n0 + ${j}u;
      let value = acc${i}_${j};
      ${epilogue}
    }`,
      )
      .join('\n    ')}
  }`,
  );
  return {
    key,
    ...gemmInterface(v),
    workgroupSize: [threads],
    ...(v.tile.sgA && {
      directives: ['enable subgroups;'],
      builtins: ['@builtin(subgroup_invocation_id) sgLane: u32'],
    }),
    prelude: `${loaders('a', v.a)}\n${loaders('b', v.b)}`,
    body: `
  let m0 = wid.y * ${tm}u;
  let n0 = (wid.x * ${threads}u + lid.x) * ${tn}u;
  let aOff = ${bindingElementOffset('a', v.a)};
  let bOff = ${bindingElementOffset('b', v.b)};
  let kBegin = wid.z * P.kchunk;
  let kEnd = min(P.k, kBegin + P.kchunk);
  ${range(tm)
    .flatMap((i) => range(tn).map((j) => `var acc${i}_${j} = 0.0;`))
    .join(' ')}
  var k = kBegin;
  for (; k + ${bk}u <= kEnd; k += ${bk}u) {
    ${step(v, bk, 'k')}
  }
  for (; k < kEnd; k++) {
    ${step({ ...v, a: { ...v.a, width: 1 }, b: { ...v.b, width: 1 } }, 1, 'k')}
  }
  let cOff = P.c_off + wid.z * P.slab;
  ${stores.join('\n  ')}
`,
  };
}
