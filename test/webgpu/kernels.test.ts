// WebGPU kernels against the plain-JS reference kernels, on tiny shapes (lavapipe is slow).
// Without an adapter the first test fails; set LORAFORGE_SKIP_WEBGPU=1 (outside CI) to skip.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as ref from '../../src/engine/cpu/reference-kernels.ts';
import * as host from '../../src/engine/cpu/host-kernels.ts';
import {
  f32ToBf16Scalar,
  f32ToF16Scalar,
  bf16ToF32Scalar,
  f16ToF32Scalar,
} from '../../src/engine/half.ts';
import { WebGpuKernels } from '../../src/engine/webgpu/kernels.ts';
import { KernelRunner, type BufferRef } from '../../src/engine/webgpu/runner.ts';
import type { KernelDef } from '../../src/engine/webgpu/kernel-def.ts';
import {
  DEFAULT_GEMM_PLAN,
  LEGACY_GEMM_PLAN,
  gemm,
  type GemmDtype,
  type GemmPlan,
} from '../../src/engine/webgpu/gemm.ts';
import { tileName, type GemmTile } from '../../src/engine/webgpu/gemm-tiled.ts';
import { candidateTiles, chooseGemmPlan, parseGemmSpec } from '../../src/engine/webgpu/tuner.ts';
import { isHardwareAdapter } from '../../src/engine/webgpu/device.ts';
import { adamwStep } from '../../src/engine/webgpu/adamw.ts';
import { scale } from '../../src/engine/webgpu/elementwise.ts';
import { rmsnormForward } from '../../src/engine/webgpu/rmsnorm.ts';
import { ropeInverseFrequencies } from '../../src/models/rope-frequencies.ts';

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

async function checkGemm(
  c: GemmCase,
  runner: KernelRunner = gpu!.runner,
  plan: GemmPlan = DEFAULT_GEMM_PLAN,
) {
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
  const f16Tiles = !plan.legacy && Object.values(plan.tiles).some((t) => t.f16);
  assertClose(
    actual,
    expected,
    `gemm ${JSON.stringify(c)}`,
    f16Tiles ? 1e-2 : 1e-4,
    f16Tiles ? 1e-2 : 1e-5,
  );
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
  const all = {
    shaderF16: true,
    subgroups: true,
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
        : tile.f16 && !gpu.context.shaderF16
          ? 'adapter has no shader-f16'
          : tile.sg && !gpu.context.subgroups
            ? 'adapter has no subgroups'
            : !allTiles && !used.has(tileName(tile)) && tile.tm * tile.tn > 16
              ? 'software adapter (compiles take seconds): LORAFORGE_TEST_ALL_GEMM_TILES=1 tests it'
              : false,
  }));
};

gpuDescribe('webgpu gemm tiles (each forced)', () => {
  everyTile().forEach(({ tile, skip }, i) => {
    const plan: GemmPlan = { legacy: false, tiles: { large: tile, rows: tile, cols: tile } };
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
  test('legacy kernel (benchmark baseline)', () =>
    checkGemm({ m: 70, n: 45, k: 33, transB: true, bias: true }, gpu!.runner, LEGACY_GEMM_PLAN));
  test('plans: forced by name, per class, and the software-adapter plan without tuning', async () => {
    const one = parseGemmSpec('8x16.8x8.k16.sg');
    assert.ok(one && !one.legacy && one.tiles.rows.sg && one.tiles.large.tm === 8);
    const mixed = parseGemmSpec('large=16x16.4x4.k16,cols=4x16.8x4.k16');
    assert.ok(mixed && !mixed.legacy);
    assert.equal(tileName(mixed.tiles.large), '16x16.4x4.k16');
    assert.ok(!DEFAULT_GEMM_PLAN.legacy);
    assert.equal(tileName(mixed.tiles.rows), tileName(DEFAULT_GEMM_PLAN.tiles.rows));
    assert.throws(() => parseGemmSpec('large=huge'), /not a GEMM plan/);
    const plan = await chooseGemmPlan(gpu!.context, gpu!.runner, {});
    assert.ok(!plan.legacy);
  });
});

// ---- attention ---------------------------------------------------------------------------------

interface AttentionCase {
  B: number;
  Tq: number;
  Tk: number;
  kvCap: number;
  H: number;
  KVH: number;
  D: number;
  mask?: boolean;
  seg?: boolean;
}

/** keyMask hides key 0 of batch 0 (so query 0 of batch 0 sees nothing) and a trailing key; segIds pack 2-3 documents. */
function masks(c: { B: number; kvCap: number }) {
  const keyMask = new Int32Array(c.B * c.kvCap).fill(1);
  keyMask[0] = 0;
  keyMask[c.B * c.kvCap - 2] = 0;
  const segIds = Int32Array.from(
    { length: c.B * c.kvCap },
    (_, i) => 1 + Math.floor(((i % c.kvCap) * (2 + (i >= c.kvCap ? 1 : 0))) / c.kvCap),
  );
  return { keyMask, segIds };
}

async function checkAttentionForward(c: AttentionCase) {
  const { B, Tq, Tk, kvCap, H, KVH, D } = c;
  const q = randomFloats(B * Tq * H * D);
  const k = randomFloats(B * kvCap * KVH * D);
  const v = randomFloats(B * kvCap * KVH * D);
  const { keyMask, segIds } = masks(c);
  const mask = c.mask ? keyMask : null;
  const seg = c.seg ? segIds : null;
  const scale = 1 / Math.sqrt(D);
  const out = new Float32Array(B * Tq * H * D);
  const lse = new Float32Array(B * H * Tq);
  ref.attentionForward(q, k, v, out, lse, B, Tq, Tk, kvCap, H, KVH, D, mask, seg, scale);
  // The masks leave query 0 of batch 0 without a visible key in training shapes.
  if (mask && Tq === Tk) assert.equal(lse[0], Infinity);
  const outGpu = upload(new Float32Array(out.length).fill(NaN));
  const lseGpu = upload(new Float32Array(lse.length));
  gpu!.attentionForward(
    upload(q),
    upload(k),
    upload(v),
    outGpu,
    lseGpu,
    B,
    Tq,
    Tk,
    kvCap,
    H,
    KVH,
    D,
    mask && upload(mask),
    seg && upload(seg),
    scale,
  );
  assertClose(await download(outGpu, out.length), out, 'out');
  assertClose(await download(lseGpu, lse.length), lse, 'lse');
}

async function checkAttentionBackward(
  c: Omit<AttentionCase, 'Tq' | 'Tk' | 'kvCap'> & { T: number },
) {
  const { B, T, H, KVH, D } = c;
  const q = randomFloats(B * T * H * D);
  const k = randomFloats(B * T * KVH * D);
  const v = randomFloats(B * T * KVH * D);
  const dout = randomFloats(B * T * H * D);
  const { keyMask, segIds } = masks({ B, kvCap: T });
  const mask = c.mask ? keyMask : null;
  const seg = c.seg ? segIds : null;
  const scale = 1 / Math.sqrt(D);
  const out = new Float32Array(B * T * H * D);
  const lse = new Float32Array(B * H * T);
  ref.attentionForward(q, k, v, out, lse, B, T, T, T, H, KVH, D, mask, seg, scale);
  const dq = new Float32Array(q.length);
  const dk = new Float32Array(k.length);
  const dv = new Float32Array(v.length);
  ref.attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, B, T, H, KVH, D, mask, seg, scale);
  const [dqGpu, dkGpu, dvGpu] = [dq, dk, dv].map((a) =>
    upload(new Float32Array(a.length).fill(NaN)),
  );
  gpu!.attentionBackward(
    upload(q),
    upload(k),
    upload(v),
    upload(out),
    upload(lse),
    upload(dout),
    dqGpu!,
    dkGpu!,
    dvGpu!,
    B,
    T,
    H,
    KVH,
    D,
    mask && upload(mask),
    seg && upload(seg),
    scale,
  );
  assertClose(await download(dqGpu!, dq.length), dq, 'dq', 1e-4, 1e-5);
  assertClose(await download(dkGpu!, dk.length), dk, 'dk', 1e-4, 1e-5);
  assertClose(await download(dvGpu!, dv.length), dv, 'dv', 1e-4, 1e-5);
}

gpuDescribe('webgpu attention', () => {
  test('forward, training shape, GQA, several query blocks', () =>
    checkAttentionForward({ B: 2, Tq: 37, Tk: 37, kvCap: 37, H: 4, KVH: 2, D: 16 }));
  test('forward with key mask and segment ids; a query with no visible key gives 0 and lse +inf', () =>
    checkAttentionForward({
      B: 2,
      Tq: 37,
      Tk: 37,
      kvCap: 37,
      H: 2,
      KVH: 1,
      D: 16,
      mask: true,
      seg: true,
    }));
  test('forward decode: Tq < Tk < kvCap, D = 64', () =>
    checkAttentionForward({ B: 2, Tq: 3, Tk: 20, kvCap: 24, H: 4, KVH: 1, D: 64, mask: true }));
  test('backward, GQA, several key blocks', () =>
    checkAttentionBackward({ B: 2, T: 37, H: 4, KVH: 2, D: 16 }));
  test('forward and backward, D = 128 (tiles of 16 and 15 rows), 4 query heads per kv head', async () => {
    await checkAttentionForward({
      B: 1,
      Tq: 40,
      Tk: 40,
      kvCap: 40,
      H: 4,
      KVH: 1,
      D: 128,
      seg: true,
    });
    await checkAttentionBackward({ B: 1, T: 40, H: 4, KVH: 1, D: 128, seg: true });
  });
  test('backward with key mask and segment ids, D = 64', () =>
    checkAttentionBackward({ B: 1, T: 35, H: 2, KVH: 1, D: 64, mask: true, seg: true }));
});

// ---- row kernels -------------------------------------------------------------------------------

gpuDescribe('webgpu rmsnorm', () => {
  const rows = 5;
  const dim = 300; // more than one workgroup's worth of columns
  const eps = 1e-6;
  test('forward (with and without rstd) and backward (dw accumulated, and skipped)', async () => {
    const x = randomFloats(rows * dim, 2);
    const w = randomFloats(dim);
    const out = new Float32Array(rows * dim);
    const rstd = new Float32Array(rows);
    ref.rmsnormForward(x, w, out, rstd, rows, dim, eps);
    const xG = upload(x);
    const wG = upload(w);
    const outG = upload(new Float32Array(rows * dim));
    const rstdG = upload(new Float32Array(rows));
    gpu!.rmsnormForward(xG, wG, outG, rstdG, rows, dim, eps);
    assertClose(await download(outG, out.length), out, 'out');
    assertClose(await download(rstdG, rows), rstd, 'rstd');
    const outNoRstd = upload(new Float32Array(rows * dim));
    gpu!.rmsnormForward(xG, wG, outNoRstd, null, rows, dim, eps);
    assertClose(await download(outNoRstd, out.length), out, 'out without rstd');

    const dout = randomFloats(rows * dim);
    const dx = new Float32Array(rows * dim);
    const dw = randomFloats(dim);
    const dwG = upload(dw);
    ref.rmsnormBackward(x, w, rstd, dout, dx, dw, rows, dim);
    const dxG = upload(new Float32Array(rows * dim));
    gpu!.rmsnormBackward(xG, wG, rstdG, upload(dout), dxG, dwG, rows, dim);
    assertClose(await download(dxG, dx.length), dx, 'dx');
    assertClose(await download(dwG, dim), dw, 'dw');
    const dxOnly = upload(new Float32Array(rows * dim));
    gpu!.rmsnormBackward(xG, wG, rstdG, upload(dout), dxOnly, null, rows, dim);
    assertClose(await download(dxOnly, dx.length), dx, 'dx without dw');
  });
});

gpuDescribe('webgpu rope', () => {
  const [B, T, heads, D, theta] = [2, 5, 3, 64, 500000];
  const positions = Int32Array.from({ length: B * T }, (_, i) => (i * 97) % 1000);
  const tables = {
    default: ropeInverseFrequencies(D, theta, null),
    // Llama 3.2's scaling: at D = 64 pairs are kept, blended and divided by the factor.
    llama3: ropeInverseFrequencies(D, theta, {
      type: 'llama3',
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    }),
  };
  for (const [name, table] of Object.entries(tables)) {
    test(`${name} frequencies: forward, inverse and in place`, async () => {
      const x = randomFloats(B * T * heads * D);
      const expected = new Float32Array(x.length);
      ref.ropeApply(x, expected, positions, B, T, heads, D, table, 0);
      const xG = upload(x);
      const outG = upload(new Float32Array(x.length));
      const posG = upload(positions);
      const tableG = upload(table, 12); // an offset exercises the binding realignment
      gpu!.ropeApply(xG, outG, posG, B, T, heads, D, tableG, false);
      assertClose(await download(outG, x.length), expected, 'rope');
      const back = new Float32Array(x.length);
      ref.ropeApply(expected, back, positions, B, T, heads, D, table, 1);
      gpu!.ropeApply(outG, outG, posG, B, T, heads, D, tableG, true);
      assertClose(await download(outG, x.length), back, 'inverse rope in place');
      assertClose(back, x, 'inverse undoes forward', 1e-4, 1e-5);
    });
  }
  test('a table that differs from the default changes the result', async () => {
    const x = randomFloats(B * T * heads * D);
    const posG = upload(positions);
    const xG = upload(x);
    const outs: Float32Array[] = [];
    for (const table of Object.values(tables)) {
      const outG = upload(new Float32Array(x.length));
      gpu!.ropeApply(xG, outG, posG, B, T, heads, D, upload(table), false);
      outs.push(await download(outG, x.length));
    }
    const diff = outs[0]!.reduce((m, v, i) => Math.max(m, Math.abs(v - outs[1]![i]!)), 0);
    assert.ok(diff > 0.1, `max difference ${diff}`);
  });
  test('partial rotary (Phi-3: 48 of 64 values turn) with scaled cos/sin', async () => {
    const rotaryDim = 48;
    const table = ropeInverseFrequencies(rotaryDim, theta, null);
    const x = randomFloats(B * T * heads * D);
    const expected = new Float32Array(x.length);
    ref.ropeApply(x, expected, positions, B, T, heads, D, table, 0, rotaryDim, 1.19);
    const [xG, posG, tableG] = [upload(x), upload(positions), upload(table)];
    const outG = upload(new Float32Array(x.length));
    gpu!.ropeApply(xG, outG, posG, B, T, heads, D, tableG, false, rotaryDim, 1.19);
    const out = await download(outG, x.length);
    assertClose(out, expected, 'partial rope');
    assert.ok(
      out.every((v, i) => i % D < rotaryDim || v === x[i]),
      'pass-through values copied',
    );
    const back = new Float32Array(x.length);
    ref.ropeApply(expected, back, positions, B, T, heads, D, table, 1, rotaryDim, 1.19);
    gpu!.ropeApply(outG, outG, posG, B, T, heads, D, tableG, true, rotaryDim, 1.19);
    assertClose(await download(outG, x.length), back, 'inverse partial rope in place');
  });
});

// ---- flat kernels ------------------------------------------------------------------------------

gpuDescribe('webgpu elementwise', () => {
  const n = 1000;
  test('swiglu forward and backward', async () => {
    const gate = randomFloats(n, 4);
    const up = randomFloats(n);
    const dout = randomFloats(n);
    const out = new Float32Array(n);
    const dgate = new Float32Array(n);
    const dup = new Float32Array(n);
    ref.swigluForward(gate, up, out, n);
    ref.swigluBackward(gate, up, dout, dgate, dup, n);
    const [gateG, upG, outG, dgateG, dupG] = [gate, up, out, dgate, dup].map((a) =>
      upload(new Float32Array(a.length)),
    );
    gpu!.write(gateG!, gate);
    gpu!.write(upG!, up);
    gpu!.swigluForward(gateG!, upG!, outG!, n);
    gpu!.swigluBackward(gateG!, upG!, upload(dout), dgateG!, dupG!, n);
    assertClose(await download(outG!, n), out, 'out');
    assertClose(await download(dgateG!, n), dgate, 'dgate');
    assertClose(await download(dupG!, n), dup, 'dup');
  });
  test('scale, in place and into another buffer at an offset', async () => {
    const x = randomFloats(n);
    const xG = upload(x);
    const outG = upload(new Float32Array(n), 12);
    gpu!.scale(xG, 3, outG, n);
    gpu!.scale(xG, -0.5, xG, n);
    assertClose(
      await download(outG, n),
      Float32Array.from(x, (v) => 3 * v),
      'scaled copy',
    );
    assertClose(
      await download(xG, n),
      Float32Array.from(x, (v) => -0.5 * v),
      'scaled in place',
    );
  });
  test('adamw step, also split into binding-sized chunks', async () => {
    const count = 3000;
    const p = randomFloats(count);
    const g = randomFloats(count);
    const m = randomFloats(count, 0.1);
    const v = Float32Array.from(randomFloats(count, 0.1), Math.abs);
    const args = [1e-3, 0.9, 0.999, 1e-8, 0.01, 1 - 0.9 ** 3, 1 - 0.999 ** 3] as const;
    const expected = [p, m, v].map((a) => a.slice());
    ref.adamwStep(expected[0]!, g, expected[1]!, expected[2]!, count, ...args);
    for (const runner of [gpu!.runner, new KernelRunner(gpu!.device, { maxBindingBytes: 4096 })]) {
      const [pG, mG, vG] = [p, m, v].map((a) => upload(a));
      adamwStep(runner, pG!, upload(g), mG!, vG!, count, ...args);
      runner.flush();
      assertClose(await download(pG!, count), expected[0]!, 'p');
      assertClose(await download(mG!, count), expected[1]!, 'm');
      assertClose(await download(vG!, count), expected[2]!, 'v');
    }
  });
  test('sum of squares, overwriting and accumulating', async () => {
    const big = randomFloats(300_001);
    const small = randomFloats(77);
    const out = upload(new Float32Array([123]));
    gpu!.sumSquares(upload(big), big.length, out, false);
    const bigSum = ref.sumSquares(big, big.length);
    assertClose(await download(out, 1), [bigSum], 'sum', 1e-5);
    gpu!.sumSquares(upload(small), small.length, out, true);
    assertClose(
      await download(out, 1),
      [bigSum + ref.sumSquares(small, small.length)],
      'accumulated',
      1e-5,
    );
    gpu!.sumSquares(upload(small), 0, out);
    assert.deepEqual(Array.from(await download(out, 1)), [0]);
  });
});

gpuDescribe('webgpu cross-entropy chunks', () => {
  const rows = 4;
  const vocab = 700;
  const chunk = 300; // chunks of 300, 300, 100
  const targets = Int32Array.from([5, 310, 699, 650]);
  test('online forward over chunks, then backward with a zero row scale', async () => {
    const logits = randomFloats(rows * vocab, 8);
    const chunkOf = (c0: number, cols: number) => {
      const part = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++)
        part.set(logits.subarray(r * vocab + c0, r * vocab + c0 + cols), r * cols);
      return part;
    };
    const runMax = new Float32Array(rows).fill(-Infinity);
    const runSum = new Float32Array(rows);
    const tgt = new Float32Array(rows);
    const [maxG, sumG, tgtG] = [runMax, runSum, tgt].map((a) => upload(a));
    const targetsG = upload(targets);
    for (let c0 = 0; c0 < vocab; c0 += chunk) {
      const cols = Math.min(chunk, vocab - c0);
      const part = chunkOf(c0, cols);
      ref.ceChunkForward(part, rows, cols, c0, targets, runMax, runSum, tgt);
      gpu!.ceChunkForward(upload(part), rows, cols, c0, targetsG, maxG!, sumG!, tgtG!);
    }
    assertClose(await download(maxG!, rows), runMax, 'runMax');
    assertClose(await download(sumG!, rows), runSum, 'runSum');
    assertClose(await download(tgtG!, rows), tgt, 'tgtLogit');

    const lse = Float32Array.from(runMax, (mx, r) => mx + Math.log(runSum[r]!));
    const rowScale = new Float32Array([0.25, 0, 0.25, 0.25]);
    const part = chunkOf(300, 300);
    const partG = upload(part);
    ref.ceChunkBackward(part, rows, 300, 300, targets, lse, rowScale);
    gpu!.ceChunkBackward(partG, rows, 300, 300, targetsG, upload(lse), upload(rowScale));
    assertClose(await download(partG, part.length), part, 'dlogits');
  });
});

// ---- bindings of one buffer --------------------------------------------------------------------

/** Packs arrays back to back (4-byte aligned, closer than the binding alignment) into one buffer. */
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
    const [xG, wG, outG, rstdG] = uploadArena([x, w, out, rstd]);
    ref.rmsnormForward(x, w, out, rstd, rows, dim, 1e-5);
    gpu!.rmsnormForward(xG!, wG!, outG!, rstdG!, rows, dim, 1e-5);
    assertClose(await download(outG!, out.length), out, 'out');
    assertClose(await download(rstdG!, rows), rstd, 'rstd');
  });
  test('swiglu backward in place (dgate = gate, dup = up)', async () => {
    const n = 50;
    const gate = randomFloats(n, 3);
    const up = randomFloats(n);
    const dout = randomFloats(n);
    const [gateG, upG, doutG] = uploadArena([gate, up, dout]);
    const [dgate, dup] = [gate.slice(), up.slice()];
    ref.swigluBackward(gate, up, dout, dgate, dup, n);
    gpu!.swigluBackward(gateG!, upG!, doutG!, gateG!, upG!, n);
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

gpuDescribe('webgpu launches wider than one grid dimension', () => {
  test('flat and one-row-per-workgroup kernels fold the excess into grid y', async () => {
    const narrow = new KernelRunner(gpu!.device, { maxWorkgroupsPerDimension: 5 });
    const n = 5000; // 20 workgroups of 256 -> a 5 x 4 grid
    const x = randomFloats(n);
    const out = upload(new Float32Array(n));
    scale(narrow, upload(x), 2, out, n);
    const [rows, dim] = [10, 8]; // a 5 x 2 grid
    const xr = randomFloats(rows * dim);
    const w = randomFloats(dim);
    const expected = new Float32Array(rows * dim);
    ref.rmsnormForward(xr, w, expected, null, rows, dim, 1e-5);
    const normed = upload(new Float32Array(rows * dim));
    rmsnormForward(narrow, upload(xr), upload(w), normed, null, rows, dim, 1e-5);
    narrow.flush();
    assertClose(
      await download(out, n),
      Float32Array.from(x, (v) => 2 * v),
      'scale',
    );
    assertClose(await download(normed, rows * dim), expected, 'rmsnorm');
  });
});

gpuDescribe('webgpu backend helper kernels', () => {
  test('add, dropout (the reference mask, in place too), axpby (beta 0 ignores NaN) and fill', async () => {
    const n = 600;
    const a = randomFloats(n);
    const b = randomFloats(n);
    const [aG, bG] = [upload(a), upload(b)];
    const sum = upload(new Float32Array(n));
    const dropped = upload(new Float32Array(n));
    gpu!.add(aG, bG, sum, n);
    gpu!.dropout(aG, dropped, n, 0.3, 12345);
    assertClose(
      await download(sum, n),
      Float32Array.from(a, (v, i) => v + b[i]!),
      'add',
    );
    const expectedDrop = new Float32Array(n);
    ref.dropout(a, expectedDrop, n, 0.3, 12345);
    assert.deepEqual(await download(dropped, n), expectedDrop, 'dropout');
    gpu!.dropout(dropped, dropped, n, 0.3, 12345); // in place: the same elements drop again
    ref.dropout(expectedDrop, expectedDrop, n, 0.3, 12345);
    assertClose(await download(dropped, n), expectedDrop, 'dropout in place');
    gpu!.axpby(aG, bG, n, 2, -1);
    assertClose(
      await download(bG, n),
      Float32Array.from(a, (v, i) => 2 * v - b[i]!),
      'axpby',
    );
    const nan = upload(new Float32Array(n).fill(NaN));
    gpu!.axpby(aG, nan, n, 3, 0);
    assertClose(
      await download(nan, n),
      Float32Array.from(a, (v) => 3 * v),
      'axpby beta 0',
    );
    gpu!.fill(nan, n, -2.5);
    assert.deepEqual(Array.from(await download(nan, 3)), [-2.5, -2.5, -2.5]);
    const ints = upload(new Int32Array(4));
    gpu!.fill(ints, 4, -7, 'i32');
    assert.deepEqual(Array.from(new Int32Array(await gpu!.read(ints, 16))), [-7, -7, -7, -7]);
  });
  test('convert between f32, f16 and bf16 bit-exactly, at odd half offsets', async () => {
    const values = Float32Array.from([
      ...randomFloats(37, 10),
      1e-7,
      -3e-5,
      65519,
      65520,
      1e6,
      -0,
      Infinity,
      -Infinity,
      0.1,
      1 / 3,
    ]);
    const n = values.length;
    for (const dtype of ['f16', 'bf16'] as const) {
      const { bits } = toHalf(values, dtype);
      const guard = 0xabcd;
      const dst = upload(new Uint16Array(n + 2).fill(guard));
      const dstAt1 = { buffer: (dst as { buffer: GPUBuffer }).buffer, offset: 2 };
      gpu!.convert(upload(values), 'f32', dstAt1, dtype, n);
      const out = new Uint16Array(await gpu!.read(dst, Math.ceil(((n + 2) * 2) / 4) * 4));
      assert.equal(out[0], guard, `${dtype}: word-mate before the range kept`);
      assert.equal(out[n + 1], guard, `${dtype}: word-mate after the range kept`);
      assert.deepEqual(Array.from(out.subarray(1, n + 1)), Array.from(bits), `${dtype} bits`);
      const widened = upload(new Float32Array(n));
      gpu!.convert(dstAt1, dtype, widened, 'f32', n);
      const widen = dtype === 'f16' ? f16ToF32Scalar : bf16ToF32Scalar;
      assert.deepEqual(
        Array.from(await download(widened, n)),
        Array.from(bits, (b) => widen(b)),
      );
    }
  });
  test('embedding lookup (f32 and bf16 tables, chunked table) and its gradient', async () => {
    const [vocab, dim] = [40, 6];
    const ids = Int32Array.from([3, 39, 0, 3, 17, 3]);
    const table = randomFloats(vocab * dim);
    const expected = new Float32Array(ids.length * dim);
    host.embeddingForward(table, 'f32', ids, expected, dim);
    const small = new KernelRunner(gpu!.device, { maxBindingBytes: 512 }); // a few rows per chunk
    const out = upload(new Float32Array(expected.length));
    const idsG = upload(ids);
    const { embeddingForward, scatterAddRows } = await import('../../src/engine/webgpu/rows.ts');
    embeddingForward(small, upload(table), 'f32', vocab, idsG, out, ids.length, dim);
    small.flush();
    assertClose(await download(out, expected.length), expected, 'f32 table');
    const { bits } = toHalf(table, 'bf16');
    const expectedBf16 = new Float32Array(expected.length);
    host.embeddingForward(bits, 'bf16', ids, expectedBf16, dim);
    gpu!.embeddingForward(upload(bits), 'bf16', vocab, idsG, out, ids.length, dim);
    assertClose(await download(out, expected.length), expectedBf16, 'bf16 table');

    const dout = randomFloats(ids.length * dim);
    const dTable = randomFloats(vocab * dim);
    const dTableG = upload(dTable);
    host.scatterAddRows(dout, ids, dTable, dim);
    scatterAddRows(small, upload(dout), idsG, dTableG, vocab, ids.length, dim);
    small.flush();
    assertClose(await download(dTableG, dTable.length), dTable, 'dTable (repeated ids summed)');
  });
  test('gather and scatter rows, column sums', async () => {
    const [srcRows, rows, cols] = [9, 4, 6];
    const idx = Int32Array.from([8, 0, 5, 0]);
    const src = randomFloats(srcRows * cols);
    const gathered = upload(new Float32Array(rows * cols));
    gpu!.gatherRows(upload(src), srcRows, upload(idx), gathered, rows, cols, 4);
    const expected = new Float32Array(rows * cols);
    idx.forEach((r, i) => expected.set(src.subarray(r * cols, (r + 1) * cols), i * cols));
    assertClose(await download(gathered, rows * cols), expected, 'gather');

    const halves = Uint16Array.from({ length: srcRows * cols }, (_, i) => i);
    const gatheredHalves = upload(new Uint16Array(rows * cols));
    gpu!.gatherRows(upload(halves), srcRows, upload(idx), gatheredHalves, rows, cols, 2);
    const halfOut = new Uint16Array(await gpu!.read(gatheredHalves, rows * cols * 2));
    assert.deepEqual(
      Array.from(halfOut),
      Array.from(idx).flatMap((r) => Array.from(halves.subarray(r * cols, (r + 1) * cols))),
    );

    const target = randomFloats(srcRows * cols);
    const scattered = target.slice();
    const scatterIdx = Int32Array.from([2, 7, 4, 1]);
    scatterIdx.forEach((r, i) =>
      scattered.set(expected.subarray(i * cols, (i + 1) * cols), r * cols),
    );
    const targetG = upload(target);
    gpu!.scatterRows(gathered, upload(scatterIdx), targetG, srcRows, rows, cols);
    assertClose(await download(targetG, target.length), scattered, 'scatter');

    const sums = randomFloats(cols);
    const sumsG = upload(sums);
    host.sumRows(src, sums, srcRows, cols);
    gpu!.sumRows(upload(src), sumsG, srcRows, cols);
    assertClose(await download(sumsG, cols), sums, 'sumRows');
  });
  test("DoRA's column kernels: scaleColumns and columnDots", async () => {
    const [rows, cols] = [7, 300];
    const a = randomFloats(rows * cols);
    const b = randomFloats(rows * cols);
    const scale = randomFloats(cols);
    const scaled = new Float32Array(rows * cols);
    host.scaleColumns(a, scale, scaled, rows, cols);
    const scaledG = upload(new Float32Array(rows * cols));
    gpu!.scaleColumns(upload(a), upload(scale), scaledG, rows, cols);
    assertClose(await download(scaledG, rows * cols), scaled, 'scaleColumns');
    const dots = randomFloats(cols);
    const dotsG = upload(dots);
    host.columnDots(a, b, dots, rows, cols);
    gpu!.columnDots(upload(a), upload(b), dotsG, rows, cols);
    assertClose(await download(dotsG, cols), dots, 'columnDots (accumulating)');
  });
  test('online cross-entropy chunks with an accumulator, then finish', async () => {
    const [rows, vocab, chunk, accCols] = [3, 500, 200, 5];
    const targets = Int32Array.from([7, 250, 499]);
    const logits = randomFloats(rows * vocab, 6);
    const runMax = new Float32Array(rows).fill(-Infinity);
    const runSum = new Float32Array(rows);
    const tgt = new Float32Array(rows);
    const acc = randomFloats(rows * accCols);
    const [maxG, sumG, tgtG, accG] = [runMax, runSum, tgt, acc].map((a) => upload(a));
    const targetsG = upload(targets);
    for (let c0 = 0; c0 < vocab; c0 += chunk) {
      const cols = Math.min(chunk, vocab - c0);
      const part = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++)
        part.set(logits.subarray(r * vocab + c0, r * vocab + c0 + cols), r * cols);
      const partG = upload(part);
      ref.ceOnlineChunk(part, rows, cols, c0, targets, runMax, runSum, tgt, acc, accCols);
      gpu!.ceOnlineChunk(partG, rows, cols, c0, targetsG, maxG!, sumG!, tgtG!, accG!, accCols);
      assertClose(await download(partG, part.length), part, 'exp chunk');
    }
    assertClose(await download(maxG!, rows), runMax, 'runMax');
    assertClose(await download(sumG!, rows), runSum, 'runSum');
    assertClose(await download(tgtG!, rows), tgt, 'tgtLogit');
    assertClose(await download(accG!, acc.length), acc, 'rescaled acc');
    const targetRows = randomFloats(rows * accCols);
    host.ceOnlineFinish(acc, runSum, targetRows, rows, accCols, 0.5);
    gpu!.ceOnlineFinish(accG!, sumG!, upload(targetRows), rows, accCols, 0.5);
    assertClose(await download(accG!, acc.length), acc, 'finished acc');
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
