// WebGPU kernels against the plain-JS reference kernels, on tiny shapes (lavapipe is slow).
// Without an adapter the first test fails; set LORAFORGE_SKIP_WEBGPU=1 (outside CI) to skip.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { reference } from '../engine/kernel-cases.ts';
import {
  f32ToBf16Scalar,
  f32ToF16Scalar,
  bf16ToF32Scalar,
  f16ToF32Scalar,
} from '../../src/engine/half.ts';
import { WebGpuKernels } from '../../src/engine/webgpu/kernels.ts';
import { KernelRunner, type BufferRef } from '../../src/engine/webgpu/runner.ts';
import { refBuffer, refOffset } from '../../src/engine/webgpu/buffer-ref.ts';
import type { KernelDef } from '../../src/engine/webgpu/kernel-def.ts';
import {
  DEFAULT_GEMM_PLAN,
  DEFAULT_TILES,
  LEGACY_GEMM_PLAN,
  gemm,
  singleTilePlan,
  type GemmDtype,
  type GemmPlan,
} from '../../src/engine/webgpu/gemm.ts';
import {
  needsF16,
  needsSubgroups,
  parseTileName,
  tileName,
  type GemmTile,
  type StagedTile,
} from '../../src/engine/webgpu/gemm-tiled.ts';
import {
  candidateTiles,
  chooseGemmPlan,
  matrixCandidates,
  parseGemmSpec,
  tuningProblem,
  whyTileCannotRun,
  whyTileFailsHere,
} from '../../src/engine/webgpu/tuner.ts';
import { isHardwareAdapter } from '../../src/engine/webgpu/device.ts';
import { WEBGPU_KERNELS, type GpuArg } from '../../src/engine/webgpu/kernel-table.ts';

let gpu: WebGpuKernels | null = null;
let acquireError: unknown = null;
try {
  gpu = await WebGpuKernels.create();
} catch (err) {
  acquireError = err;
}
const skipAll = gpu === null && !process.env.CI && process.env.LORAFORGE_SKIP_WEBGPU === '1';

after(() => gpu?.destroy());

test('a WebGPU adapter is available', { skip: skipAll && 'LORAFORGE_SKIP_WEBGPU=1' }, () => {
  if (acquireError) {
    throw new Error(
      `no WebGPU device (${(acquireError as Error).message}); run scripts/install-lavapipe.sh as root, ` +
        'or set LORAFORGE_SKIP_WEBGPU=1 outside CI to skip these tests',
    );
  }
  const { adapterInfo, shaderF16, subgroups } = gpu!.context;
  console.log(
    `# adapter: ${adapterInfo.description || adapterInfo.device} shader-f16=${shaderF16} subgroups=${subgroups}`,
  );
});

// ---- helpers -----------------------------------------------------------------------------------

let seed = 12345;
function random(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const randomFloats = (n: number, spread = 1) =>
  Float32Array.from({ length: n }, () => (random() * 2 - 1) * spread);

const BUFFER_USAGE = () =>
  GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Uploads `data` at byte `offset` of a fresh buffer (offsets test the binding realignment). */
function upload(data: Float32Array | Int32Array | Uint16Array | Uint8Array, offset = 0): BufferRef {
  const k = gpu!;
  // writeBuffer needs 4-byte multiples, so the bytes before `offset` are written too.
  const bytes = new Uint8Array(Math.max(4, Math.ceil((offset + data.byteLength) / 4) * 4));
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
  const buffer = k.device.createBuffer({ size: bytes.byteLength, usage: BUFFER_USAGE() });
  k.write(buffer, bytes);
  return { buffer, offset };
}

async function download(source: BufferRef, n: number): Promise<Float32Array> {
  return new Float32Array(await gpu!.read(source, n * 4));
}

function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  what: string,
  rtol = 1e-4,
  atol = 1e-5,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a === e) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}[${i}]: got ${a}, expected ${e}`);
    }
  }
}

function toHalf(
  values: Float32Array,
  dtype: GemmDtype,
): { bits: Uint16Array; rounded: Float32Array } {
  const narrow = dtype === 'f16' ? f32ToF16Scalar : f32ToBf16Scalar;
  const widen = dtype === 'f16' ? f16ToF32Scalar : bf16ToF32Scalar;
  const bits = Uint16Array.from(values, (v) => narrow(v));
  return { bits, rounded: Float32Array.from(bits, (b) => widen(b)) };
}

function referenceGemm(
  A: Float32Array,
  B: Float32Array,
  C: Float32Array,
  bias: Float32Array | null,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  alpha: number,
  beta: number,
  lda: number,
  ldb: number,
  ldc: number,
): Float32Array {
  const out = C.slice();
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        s +=
          (transA ? A[p * lda + i]! : A[i * lda + p]!) *
          (transB ? B[j * ldb + p]! : B[p * ldb + j]!);
      }
      const ci = i * ldc + j;
      out[ci] = alpha * s + (beta === 0 ? 0 : beta * C[ci]!) + (bias ? bias[j]! : 0);
    }
  }
  return out;
}

const gpuDescribe = (name: string, fn: () => void) => describe(name, { skip: gpu === null }, fn);

// ---- GEMM --------------------------------------------------------------------------------------

interface GemmCase {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  bias?: boolean;
  aDtype?: GemmDtype;
  bDtype?: GemmDtype;
  pad?: number;
  offsetElements?: number;
}

/** Runs one GEMM case under `plan`, checks it against the float64 reference and returns C. */
async function runCheckedGemm(
  c: GemmCase,
  runner: KernelRunner = gpu!.runner,
  plan: GemmPlan = DEFAULT_GEMM_PLAN,
): Promise<Float32Array> {
  const {
    m,
    n,
    k,
    transA = false,
    transB = false,
    alpha = 1,
    beta = 0,
    pad = 0,
    offsetElements = 0,
  } = c;
  const aDtype = c.aDtype ?? 'f32';
  const bDtype = c.bDtype ?? 'f32';
  const lda = (transA ? m : k) + pad;
  const ldb = (transB ? k : n) + pad;
  const ldc = n + pad;
  const aRows = transA ? k : m;
  const bRows = transB ? n : k;
  let A: Float32Array = randomFloats(aRows * lda);
  let B: Float32Array = randomFloats(bRows * ldb);
  const C = randomFloats(m * ldc);
  const bias = c.bias ? randomFloats(n) : null;
  const place = (values: Float32Array, dtype: GemmDtype) => {
    if (dtype === 'f32') return { data: values, rounded: values, bytes: 4 };
    const { bits, rounded } = toHalf(values, dtype);
    return { data: bits, rounded, bytes: 2 };
  };
  const a = place(A, aDtype);
  const b = place(B, bDtype);
  A = a.rounded;
  B = b.rounded;
  const cRef = upload(C, offsetElements * 4);
  gemm(
    runner,
    {
      a: upload(a.data, offsetElements * a.bytes),
      b: upload(b.data, offsetElements * b.bytes),
      c: cRef,
      bias: bias ? upload(bias, offsetElements * 4) : null,
      m,
      n,
      k,
      transA,
      transB,
      alpha,
      beta,
      aDtype,
      bDtype,
      ...(pad ? { lda, ldb, ldc } : {}),
    },
    plan,
  );
  runner.flush();
  const expected = referenceGemm(
    A,
    B,
    C,
    bias,
    m,
    n,
    k,
    transA,
    transB,
    alpha,
    beta,
    lda,
    ldb,
    ldc,
  );
  const actual = await download(cRef, m * ldc);
  if (pad) {
    // Padding columns of C must be left untouched.
    for (let i = 0; i < m; i++)
      for (let j = n; j < ldc; j++) assert.equal(actual[i * ldc + j], C[i * ldc + j]);
  }
  // f16 tiles round both operands to f16 (11-bit mantissa).
  const f16Tiles = !plan.legacy && Object.values(plan.tiles).some(needsF16);
  assertClose(
    actual,
    expected,
    `gemm ${JSON.stringify(c)}`,
    f16Tiles ? 1e-2 : 1e-4,
    f16Tiles ? 1e-2 : 1e-5,
  );
  return actual;
}

async function checkGemm(...args: Parameters<typeof runCheckedGemm>): Promise<void> {
  await runCheckedGemm(...args);
}

gpuDescribe('webgpu gemm', () => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      test(`f32 transA=${transA} transB=${transB}, ragged tiles`, () =>
        checkGemm({ m: 70, n: 45, k: 33, transA, transB }));
    }
  }
  test('alpha, beta and bias', () =>
    checkGemm({ m: 19, n: 67, k: 20, alpha: 0.5, beta: -1.5, bias: true }));
  test('beta = 0 ignores NaN in C', async () => {
    const c = upload(new Float32Array([NaN, NaN, NaN, NaN]));
    gemm(gpu!.runner, {
      a: upload(new Float32Array([1, 2])),
      b: upload(new Float32Array([3, 4])),
      c,
      m: 2,
      n: 2,
      k: 1,
    });
    assert.deepEqual(Array.from(await download(c, 4)), [3, 4, 6, 8]);
  });
  test('k = 0 leaves beta * C + bias', () => checkGemm({ m: 3, n: 5, k: 0, beta: 2, bias: true }));
  test('odd element offsets and leading dimensions', () =>
    checkGemm({
      m: 9,
      n: 13,
      k: 11,
      transB: true,
      pad: 3,
      offsetElements: 5,
      beta: 1,
      bias: true,
    }));
  for (const bDtype of ['f16', 'bf16'] as const) {
    test(`B stored as ${bDtype}`, () =>
      checkGemm({ m: 33, n: 40, k: 27, transB: true, bDtype, offsetElements: 3 }));
    test(`A and B stored as ${bDtype}, transposed A`, () =>
      checkGemm({ m: 17, n: 9, k: 31, transA: true, aDtype: bDtype, bDtype, offsetElements: 1 }));
  }
  test('operands larger than one binding are split (m, n and k)', async () => {
    const small = new KernelRunner(gpu!.device, { maxBindingBytes: 1024 });
    await checkGemm({ m: 40, n: 24, k: 30, transB: true, bias: true, beta: 0.5 }, small);
    await checkGemm(
      { m: 20, n: 30, k: 50, transA: true, bDtype: 'bf16', offsetElements: 7 },
      small,
    );
  });
});

// Every tile the tuner may pick (forced one at a time), on cases that take each load path: vec4
// f32 rows, packed bf16 pairs (the models' transposed weights), element loads (odd offsets) and
// split-K (few tiles, deep k). Tiles the adapter cannot run are skipped with the reason. On a
// software adapter a large tile's shader takes seconds of CPU to compile, so there only the tiles
// it runs (its fixed plan and the default plan) and the 4x4 ones (the f16 and subgroup paths
// among them) are tested unless LORAFORGE_TEST_ALL_GEMM_TILES=1.
const everyTile = (): { tile: GemmTile; skip: string | false }[] => {
  // Subgroup-matrix tiles depend on the adapter's shapes: their own suite below.
  const all = {
    shaderF16: true,
    subgroups: true,
    fixedSubgroupSize: 8,
    maxSubgroupSize: 8,
    subgroupMatrixConfigs: [],
    limits: { maxComputeInvocationsPerWorkgroup: 1024 },
  };
  const software = gpu !== null && !isHardwareAdapter(gpu.context.adapterInfo);
  const allTiles = !software || process.env.LORAFORGE_TEST_ALL_GEMM_TILES === '1';
  const used = new Set(
    [DEFAULT_GEMM_PLAN, gpu?.gemmPlan ?? DEFAULT_GEMM_PLAN].flatMap((plan) =>
      plan.legacy ? [] : Object.values(plan.tiles).map(tileName),
    ),
  );
  const names = new Set<string>();
  const tiles: GemmTile[] = [];
  for (const cls of ['large', 'rows', 'cols'] as const) {
    for (const tile of candidateTiles(all as never, cls, true)) {
      if (!names.has(tileName(tile))) tiles.push(tile);
      names.add(tileName(tile));
    }
  }
  return tiles.map((tile) => ({
    tile,
    skip:
      gpu === null
        ? 'no adapter'
        : (whyTileCannotRun(gpu.context, tile) ??
          (!allTiles &&
          !used.has(tileName(tile)) &&
          (tile as StagedTile).tm * (tile as StagedTile).tn > 16
            ? 'software adapter (compiles take seconds): LORAFORGE_TEST_ALL_GEMM_TILES=1 tests it'
            : false)),
  }));
};

gpuDescribe('webgpu gemm tiles (each forced)', () => {
  everyTile().forEach(({ tile, skip }, i) => {
    const plan = singleTilePlan(tile);
    const transA = (i & 1) === 1;
    const transB = (i & 2) === 0;
    test(`${tileName(tile)}: f32 transA=${transA} transB=${transB}, beta, bias`, { skip }, () =>
      checkGemm({ m: 37, n: 44, k: 40, transA, transB, beta: 0.5, bias: true }, gpu!.runner, plan),
    );
    test(`${tileName(tile)}: bf16 x W^T, split-K, odd offsets`, { skip }, async () => {
      await checkGemm(
        { m: 5, n: 36, k: 700, transB: true, bDtype: 'bf16', offsetElements: 2, bias: true },
        gpu!.runner,
        plan,
      );
      await checkGemm(
        { m: 19, n: 13, k: 21, transB: true, bDtype: 'bf16', offsetElements: 1 },
        gpu!.runner,
        plan,
      );
    });
  });
  test('the tuner refuses a tile whose kernel fails on the adapter or gives another product', async () => {
    const runner = gpu!.runner;
    const problem = tuningProblem(runner, 'rows');
    try {
      problem.product(DEFAULT_GEMM_PLAN);
      const expected = await problem.result();
      assert.equal(await whyTileFailsHere(runner, problem, expected, DEFAULT_TILES.rows), null);
      // 128 KiB of staged tiles: a pipeline error (workgroup memory), caught, not left to the next read.
      const oversized = parseTileName('16x16.8x8.k128')!;
      assert.match(
        (await whyTileFailsHere(runner, problem, expected, oversized)) ?? 'accepted',
        /workgroup/i,
      );
      const other = expected.slice();
      other[5]! += 1;
      assert.match(
        (await whyTileFailsHere(runner, problem, other, DEFAULT_TILES.rows)) ?? 'accepted',
        /^element 5 is /,
      );
      // The device is still usable.
      await checkGemm({ m: 9, n: 13, k: 11 });
    } finally {
      problem.destroy();
    }
  });
  test('legacy kernel (benchmark baseline)', () =>
    checkGemm({ m: 70, n: 45, k: 33, transB: true, bias: true }, gpu!.runner, LEGACY_GEMM_PLAN));
  test('plans: forced by name, per class, and the software-adapter plan without tuning', async () => {
    const one = parseGemmSpec('8x16.8x8.k16.sg');
    assert.ok(
      one &&
        !one.legacy &&
        needsSubgroups(one.tiles.rows) &&
        (one.tiles.large as StagedTile).tm === 8,
    );
    const mixed = parseGemmSpec('large=16x16.4x4.k16,cols=4x16.8x4.k16');
    assert.ok(mixed && !mixed.legacy);
    assert.equal(tileName(mixed.tiles.large), '16x16.4x4.k16');
    assert.ok(!DEFAULT_GEMM_PLAN.legacy);
    assert.equal(tileName(mixed.tiles.rows), tileName(DEFAULT_GEMM_PLAN.tiles.rows));
    assert.throws(() => parseGemmSpec('large=huge'), /not a GEMM plan/);
    const plan = await chooseGemmPlan(gpu!.context, gpu!.runner, {});
    assert.ok(!plan.legacy);
    // A tile built for another subgroup size is refused by name rather than run wrongly.
    await assert.rejects(
      chooseGemmPlan(gpu!.context, gpu!.runner, { gemm: 'd16.4x4.s3' }),
      /d16\.4x4\.s3: the tile needs subgroups of exactly 3/,
    );
  });
});

// The direct kernels load each layout differently (A uniform along k or along m, B per invocation
// along k or along n, vec4 / packed pairs / single elements, a scalar k tail, clamped edge rows and
// columns; with `.s8` A shared through subgroups, lanes loading past the block), so every layout
// and load width is checked on the software plans' direct tiles.
gpuDescribe('webgpu direct gemm (every layout and load width)', () => {
  for (const name of ['d16.8x4', 'd16.4x4', 'd16.16x4.s8', 'd8.4x4.s8']) {
    const tile = parseTileName(name)!;
    const plan = singleTilePlan(tile);
    const skip = gpu && whyTileCannotRun(gpu.context, tile);
    if (skip) {
      test(`${name}`, { skip }, () => {});
      continue;
    }
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        test(`${name}: f32 transA=${transA} transB=${transB}, vec4 rows, k tail, ragged edges`, async () => {
          // Padded rows: vec4 loads along k (a k tail of 3), element loads along m / n ...
          const common = { transA, transB, beta: 0.5, bias: true };
          await checkGemm({ m: 37, n: 68, k: 43, pad: 1, ...common }, gpu!.runner, plan);
          // ... and the other way round.
          await checkGemm({ m: 40, n: 68, k: 45, ...common }, gpu!.runner, plan);
        });
        test(`${name}: bf16 transA=${transA} transB=${transB}, packed pairs`, () =>
          checkGemm(
            { m: 21, n: 36, k: 30, transA, transB, aDtype: 'bf16', bDtype: 'bf16' },
            gpu!.runner,
            plan,
          ));
      }
    }
    test(`${name}: f16 x W^T, element loads (odd offsets), split-K`, async () => {
      await checkGemm(
        { m: 9, n: 13, k: 27, transB: true, bDtype: 'f16', offsetElements: 1, pad: 1 },
        gpu!.runner,
        plan,
      );
      await checkGemm(
        { m: 5, n: 40, k: 1030, transB: true, bDtype: 'bf16', beta: 1, bias: true },
        gpu!.runner,
        plan,
      );
    });
  }
});

// Subgroup-matrix tiles are built from the shapes the adapter reports (f16 or f32 components,
// f32 results). Each candidate the tuner could time is forced and checked against the float64
// reference and against the staged path on the same inputs: every transpose, vec4 / packed-pair /
// element loads, ragged edges, beta and bias, split-K. Adapters without subgroup matrices (the
// lavapipe of Debian 12's backports, Mesa 25.0) skip them with the reason;
// scripts/subgroup-matrix-check.sh runs them on a newer lavapipe, which has 8x8x8 f16 ones.
const matrixTiles = gpu
  ? (['large', 'rows', 'cols'] as const).flatMap((cls) => matrixCandidates(gpu!.context, cls))
  : [];
const noMatrix =
  gpu === null
    ? 'no adapter'
    : matrixTiles.length === 0 &&
      'the adapter reports no subgroup-matrix shapes with f32 results (chromium-experimental-subgroup-matrix)';

/** Runs a case under `plan` and under the default staged tiles on the same inputs, and compares them. */
async function checkAgainstStaged(c: GemmCase, plan: GemmPlan) {
  const inputs = seed;
  const matrix = await runCheckedGemm(c, gpu!.runner, plan);
  seed = inputs;
  const staged = await runCheckedGemm(c, gpu!.runner, DEFAULT_GEMM_PLAN);
  assertClose(matrix, staged, `subgroup matrices vs staged tiles ${JSON.stringify(c)}`, 1e-2, 1e-2);
}

describe('webgpu subgroup-matrix gemm (each tile forced)', { skip: noMatrix }, () => {
  for (const tile of matrixTiles) {
    const plan = singleTilePlan(tile);
    const name = tileName(tile);
    const skip = whyTileCannotRun(gpu!.context, tile) ?? false;
    test(`${name}: f32, every transpose, ragged edges, beta, bias`, { skip }, async () => {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const common = { transA, transB, beta: 0.5, bias: true };
          await checkAgainstStaged({ m: 37, n: 44, k: 40, ...common }, plan);
        }
      }
    });
    test(
      `${name}: bf16 x W^T (packed pairs), split-K, odd offsets; f16 element loads`,
      { skip },
      async () => {
        await checkAgainstStaged(
          { m: 5, n: 36, k: 700, transB: true, bDtype: 'bf16', offsetElements: 2, bias: true },
          plan,
        );
        await checkAgainstStaged(
          { m: 19, n: 13, k: 21, transA: true, aDtype: 'bf16', bDtype: 'bf16', offsetElements: 1 },
          plan,
        );
        await checkAgainstStaged(
          { m: 9, n: 13, k: 27, transB: true, bDtype: 'f16', offsetElements: 1, pad: 1, beta: 1 },
          plan,
        );
      },
    );
  }
});

test('subgroup-matrix tiles: named, planned from the adapter shapes, refused by name elsewhere', () => {
  const name = 'sm16x16x16.f16.2x2.2x2.k32.l32';
  const tile = parseTileName(name)!;
  assert.equal(tileName(tile), name);
  assert.ok(needsF16(tile) && needsSubgroups(tile));
  const context = {
    shaderF16: true,
    subgroups: true,
    fixedSubgroupSize: 32,
    maxSubgroupSize: 32,
    subgroupMatrixConfigs: [{ component: 'f16' as const, M: 16, N: 16, K: 16 }],
    limits: { maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupStorageSize: 32768 },
  } as never;
  assert.equal(whyTileCannotRun(context, tile), null);
  // 128 x 256 blocks: 24 KiB of staged slices and 4 KiB of result fragments exceed 24 KiB.
  const small = {
    ...(context as object),
    limits: { maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupStorageSize: 24576 },
  } as never;
  assert.equal(whyTileCannotRun(small, tile), null);
  assert.match(
    whyTileCannotRun(small, parseTileName('sm16x16x16.f16.2x2.4x8.k32.l32')!)!,
    /more workgroup memory/,
  );
  assert.match(
    whyTileCannotRun(context, parseTileName('sm8x8x8.f16.2x2.2x2.k32.l32')!)!,
    /no 8x8x8 f16 subgroup matrices .* offers 16x16x16 f16/,
  );
  assert.match(
    whyTileCannotRun(context, parseTileName('sm16x16x16.f16.2x2.2x2.k32.l16')!)!,
    /planned for subgroups of 16, the adapter's largest is 32/,
  );
  // Candidates: only with f16 allowed (f16 components round f32 operands), within the limits.
  assert.equal(
    candidateTiles(context, 'large', false).filter((t) => t.kind === 'matrix').length,
    0,
  );
  const large = candidateTiles(context, 'large', true).filter((t) => t.kind === 'matrix');
  assert.deepEqual(large.map(tileName), [
    name,
    'sm16x16x16.f16.2x2.4x2.k32.l32',
    'sm16x16x16.f16.2x4.2x2.k32.l32',
  ]);
  assert.equal(
    parseTileName('sm16x16x16.f16.2x2.2x2.k24.l32'),
    null,
    'k depth not a multiple of K',
  );
});

/** Packs arrays back to back (4-byte aligned, closer than the binding alignment) into one buffer. */
/** A kernel argument for f32 data at `ref` (extent: the rest of the buffer). */
function f32Arg(ref: BufferRef): GpuArg {
  const buffer = refBuffer(ref);
  return { buffer, offset: refOffset(ref), dtype: 'f32', bytes: buffer.size - refOffset(ref) };
}

function uploadArena(parts: (Float32Array | Int32Array)[]): BufferRef[] {
  const offsets: number[] = [];
  let bytes = 0;
  for (const part of parts) {
    offsets.push(bytes);
    bytes += part.byteLength;
  }
  const arena = new Uint8Array(bytes);
  parts.forEach((part, i) =>
    arena.set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength), offsets[i]),
  );
  const { buffer } = upload(arena) as { buffer: GPUBuffer };
  return offsets.map((offset) => ({ buffer, offset }));
}

gpuDescribe('webgpu kernels on tensors sharing one buffer', () => {
  test('rmsnorm with x, w, out and rstd packed into one arena', async () => {
    const [rows, dim] = [3, 10];
    const x = randomFloats(rows * dim);
    const w = randomFloats(dim);
    const out = new Float32Array(rows * dim);
    const rstd = new Float32Array(rows);
    const [xG, wG, outG, rstdG] = uploadArena([x, w, out, rstd]).map(f32Arg);
    reference('rmsnormForward', { x, w, out, rstd }, { rows, dim, eps: 1e-5 });
    WEBGPU_KERNELS.rmsnormForward(
      { x: xG!, w: wG!, out: outG!, rstd: rstdG! },
      { rows, dim, eps: 1e-5 },
      gpu!.runner,
    );
    assertClose(await download(outG!, out.length), out, 'out');
    assertClose(await download(rstdG!, rows), rstd, 'rstd');
  });
  test('swiglu backward in place (dgate = gate, dup = up)', async () => {
    const n = 50;
    const gate = randomFloats(n, 3);
    const up = randomFloats(n);
    const dout = randomFloats(n);
    const [gateG, upG, doutG] = uploadArena([gate, up, dout]).map(f32Arg);
    const [dgate, dup] = [gate.slice(), up.slice()];
    reference('gatedBackward', { gate, up, dout, dgate, dup }, { n, activation: 'silu' });
    WEBGPU_KERNELS.gatedBackward(
      { gate: gateG!, up: upG!, dout: doutG!, dgate: gateG!, dup: upG! },
      { n, activation: 'silu' },
      gpu!.runner,
    );
    assertClose(await download(gateG!, n), dgate, 'dgate');
    assertClose(await download(upG!, n), dup, 'dup');
  });
  test('gemm with A, B, bias and C in one arena', async () => {
    const [m, n, k] = [5, 6, 7];
    const A = randomFloats(m * k);
    const B = randomFloats(k * n);
    const bias = randomFloats(n);
    const C = randomFloats(m * n);
    const [aG, bG, biasG, cG] = uploadArena([A, B, bias, C]);
    gemm(gpu!.runner, { a: aG!, b: bG!, c: cG!, bias: biasG!, m, n, k, beta: 1 });
    const expected = referenceGemm(A, B, C, bias, m, n, k, false, false, 1, 1, k, n, n);
    assertClose(await download(cG!, m * n), expected, 'C');
  });
});

gpuDescribe('webgpu errors', () => {
  test('a validation error surfaces as a rejected read', async () => {
    // A device of its own: an error is device-wide and would also reach the shared runner.
    const own = await WebGpuKernels.create();
    try {
      const out = own.device.createBuffer({ size: 16, usage: BUFFER_USAGE() });
      const broken: KernelDef = {
        key: 'broken',
        params: {},
        buffers: [{ name: 'out', dtype: 'f32', access: 'read_write' }],
        workgroupSize: [1],
        body: 'out[0] = undefinedName;',
      };
      own.runner.dispatch(broken, { out: { ref: out, elements: 4 } }, {}, [1]);
      await assert.rejects(own.read(out, 16), /WebGPU: .*undefinedName/s);
      assert.deepEqual(Array.from(new Float32Array(await own.read(out, 16))), [0, 0, 0, 0]);
    } finally {
      own.destroy();
    }
  });
});
