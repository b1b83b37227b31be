/**
 * The native GEMM kernel (native/src/gemm/) of every ISA variant built here that this CPU runs,
 * against a float64 reference: edge sizes around the register tiles, every transpose combination,
 * strided operands, alpha / beta / bias, f32 / bf16 / f16 operands, the streaming path (m <= 4),
 * several k blocks and thread splits, and precision 1 (bf16 products). Also the benchmark probes.
 * NATIVE_GEMM_TEST_SMALL=1 keeps to small shapes (under qemu: scripts/test-arm64.sh).
 */
import { before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildNativeIfPossible,
  loadNativeVariants,
  nativeSkipReason,
  type NativeAddon,
  type NativeVariantBuild,
} from './native-variants.ts';

type Dtype = 'f32' | 'bf16' | 'f16';
const DTYPE_CODES: Record<Dtype, number> = { f32: 0, bf16: 1, f16: 2 };
const SMALL = process.env.NATIVE_GEMM_TEST_SMALL === '1';

/** Deterministic pseudo-random numbers in [-1, 1). */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 31 - 1;
  };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function bf16ToNumber(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0]!;
}

/** The bf16 nearest to x (ties to even), as a number: what precision 1 multiplies A as. */
function roundToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0]!;
  return bf16ToNumber(((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff);
}

function f16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** A matrix in native memory and the values (widened to numbers) the kernel must read. */
interface Operand {
  buffer: ArrayBuffer;
  address: number;
  values: Float64Array;
}

function makeOperand(addon: NativeAddon, count: number, dtype: Dtype, next: () => number): Operand {
  const buffer = addon.alloc(count * (dtype === 'f32' ? 4 : 2));
  const values = new Float64Array(count);
  if (dtype === 'f32') {
    const view = new Float32Array(buffer);
    for (let i = 0; i < count; i++) values[i] = view[i] = next();
  } else {
    const view = new Uint16Array(buffer);
    for (let i = 0; i < count; i++) {
      if (dtype === 'bf16') {
        f32Scratch[0] = next();
        view[i] = u32Scratch[0]! >>> 16;
        values[i] = bf16ToNumber(view[i]!);
      } else {
        // Finite halves around 1, some subnormal.
        const sign = next() < 0 ? 0x8000 : 0;
        const exponent = i % 11 === 0 ? 0 : 12 + Math.floor((next() + 1) * 2.5);
        view[i] = sign | (exponent << 10) | Math.floor((next() + 1) * 511.9);
        values[i] = f16ToNumber(view[i]!);
      }
    }
  }
  return { buffer, address: addon.address(buffer), values };
}

interface Case {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  aDtype?: Dtype;
  bDtype?: Dtype;
  alpha?: number;
  beta?: number;
  bias?: boolean;
  /** Extra elements per stored row of A, B and C (leading dimensions past the rows). */
  pad?: number;
  precision?: 0 | 1;
  threads?: number;
}

/**
 * Tolerance relative to the sum of the absolute values of the terms (so that cancellation does
 * not shrink the bound). Exact: f32 products and sums, about 1e-7 typical at these k; 1e-5 leaves
 * room for the order of summation. With bf16 products (precision 1, B bf16, on avx512bf16) A is
 * rounded to bf16 first: 8 significand bits, a relative error up to 2^-9 per product, so the
 * result may be 2^-9 of the magnitude away from the exact one. Rather than that loose bound, C
 * must match, at the exact tolerance, either the reference made from the rounded A (the bf16
 * paths) or the exact one (paths that stay exact, as precision 1 allows: the m <= 4 sweep over a
 * plain B).
 */
const EXACT_TOLERANCE = 1e-5;

/**
 * Runs one GEMM and checks every element of C (padding included) against float64. Returns how
 * many elements matched only the reference with A rounded to bf16.
 */
function checkGemm(v: NativeVariantBuild, spec: Case, seed: number): number {
  const { addon } = v;
  const { m, n, k, transA = false, transB = false, aDtype = 'f32', bDtype = 'f32' } = spec;
  const { pad = 0, alpha = 1, beta = 0, precision = 0, threads = 1 } = spec;
  addon.setThreads(threads);
  const next = random(seed);
  const lda = (transA ? m : k) + pad;
  const ldb = (transB ? k : n) + pad;
  const ldc = n + pad;
  const a = makeOperand(addon, Math.max(1, (transA ? k : m) * lda), aDtype, next);
  const b = makeOperand(addon, Math.max(1, (transB ? n : k) * ldb), bDtype, next);
  const c = makeOperand(addon, Math.max(1, m * ldc), 'f32', next);
  const bias = spec.bias ? makeOperand(addon, n, 'f32', next) : undefined;
  const got = new Float32Array(c.buffer);
  // beta = 0 must not read C: poison it (and its padding, which must stay as it is).
  if (beta === 0) got.fill(NaN);
  const before = Float32Array.from(got);
  const mayRoundA = precision === 1 && bDtype === 'bf16' && v.name === 'avx512bf16';
  const args = new Float64Array([
    m,
    n,
    k,
    a.address,
    lda,
    transA ? 1 : 0,
    DTYPE_CODES[aDtype],
    b.address,
    ldb,
    transB ? 1 : 0,
    DTYPE_CODES[bDtype],
    c.address,
    ldc,
    alpha,
    beta,
    bias?.address ?? 0,
    precision,
  ]);
  const result = addon.call(addon.kernelId('gemm'), args, 0, 1);
  assert.ok(Number.isNaN(result), 'gemm returns NaN');
  const label = `${v.name} ${JSON.stringify(spec)}`;
  let roundedOnly = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let roundedSum = 0;
      let magnitude = 0;
      for (let p = 0; p < k; p++) {
        const av = a.values[transA ? p * lda + i : i * lda + p]!;
        const bv = b.values[transB ? j * ldb + p : p * ldb + j]!;
        sum += av * bv;
        roundedSum += roundToBf16(av) * bv;
        magnitude += Math.abs(av * bv);
      }
      let rest = 0;
      magnitude *= Math.abs(alpha);
      if (beta !== 0) {
        rest += beta * before[i * ldc + j]!;
        magnitude += Math.abs(beta * before[i * ldc + j]!);
      }
      if (bias) {
        rest += bias.values[j]!;
        magnitude += Math.abs(bias.values[j]!);
      }
      const expected = alpha * sum + rest;
      const actual = got[i * ldc + j]!;
      const tolerance = EXACT_TOLERANCE * magnitude + 1e-30;
      const near = (reference: number) => Math.abs(actual - reference) <= tolerance;
      if (!near(expected) && mayRoundA && near(alpha * roundedSum + rest)) roundedOnly++;
      else if (!near(expected)) {
        assert.fail(`${label}: C[${i},${j}] = ${actual}, expected ${expected} ± ${tolerance}`);
      }
    }
    for (let j = n; j < ldc; j++) {
      assert.ok(
        Object.is(got[i * ldc + j], before[i * ldc + j]),
        `${label}: C padding [${i},${j}] written`,
      );
    }
  }
  for (const operand of [a, b, c, bias]) if (operand) addon.free(operand.address);
  return roundedOnly;
}

const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;
const DTYPE_PAIRS: Array<[Dtype, Dtype]> = [
  ['f32', 'f32'],
  ['f32', 'bf16'],
  ['f32', 'f16'],
  ['bf16', 'bf16'],
  ['f16', 'f32'],
];

/**
 * m, n, k around the tiles: 1, 7, 17, 33 and the row tiles (6, 8, 14) +- 1; column tiles are
 * multiples of 8 (one more, one fewer); k past one block (384 steps f32, 768 bf16 pairs).
 */
const EDGE_SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 33, 17],
  [2, 17, 33],
  [4, 65, 7],
  [5, 7, 17],
  [7, 31, 33],
  [13, 33, 1],
  [15, 17, 7],
  [17, 1, 9],
  [29, 47, 65],
  [33, 64, 40],
];
const LARGE_SHAPES: Array<[number, number, number]> = SMALL
  ? [[20, 40, 400]]
  : [
      [1, 700, 900], // decode: streaming, columns split over threads
      [3, 130, 1601], // streaming with a k tail
      [60, 600, 1000], // more columns than one task, several k blocks
      [200, 8, 130], // narrow C: tasks over rows
      [30, 40, 1550], // k blocks of bf16 pairs (768) with an odd remainder
    ];

let variants: NativeVariantBuild[] = [];
let skipReason: string | undefined;

before(() => {
  buildNativeIfPossible();
  const found = loadNativeVariants();
  variants = found.runnable;
  skipReason = nativeSkipReason(found);
  if (found.unsupported.length) {
    console.log(`native-gemm: this CPU does not run ${found.unsupported.join(', ')}`);
  }
});

/** Runs body once per runnable variant as a subtest, or skips with the reason. */
async function eachVariant(t: TestContext, body: (v: NativeVariantBuild) => void): Promise<void> {
  if (skipReason) {
    t.skip(skipReason);
    return;
  }
  for (const v of variants) await t.test(v.name, () => body(v));
}

describe('native gemm', () => {
  it('matches float64 at edge sizes, every transpose, strided, alpha / beta / bias', (t) =>
    eachVariant(t, (v) => {
      let seed = 1;
      for (const [m, n, k] of EDGE_SHAPES) {
        for (const [transA, transB] of TRANSPOSES) {
          checkGemm(v, { m, n, k, transA, transB }, seed++);
          checkGemm(
            v,
            { m, n, k, transA, transB, pad: 3, alpha: -0.75, beta: 1, bias: true },
            seed++,
          );
        }
      }
    }));

  it('matches float64 for every operand dtype pair', (t) =>
    eachVariant(t, (v) => {
      let seed = 100;
      for (const [aDtype, bDtype] of DTYPE_PAIRS) {
        for (const [transA, transB] of TRANSPOSES) {
          for (const [m, n, k] of [
            [1, 19, 37],
            [16, 35, 41],
          ] as const) {
            checkGemm(
              v,
              { m, n, k, transA, transB, aDtype, bDtype, beta: 0.5, bias: true, pad: 1 },
              seed++,
            );
          }
        }
      }
    }));

  it('matches float64 on larger shapes, split over two threads', (t) =>
    eachVariant(t, (v) => {
      let seed = 200;
      for (const [m, n, k] of LARGE_SHAPES) {
        for (const [transA, transB] of [
          [false, true],
          [true, false],
        ] as const) {
          for (const bDtype of ['f32', 'bf16'] as const) {
            checkGemm(v, { m, n, k, transA, transB, bDtype, threads: 2, beta: 1, pad: 2 }, seed++);
          }
        }
      }
    }));

  it('with precision 1 multiplies bf16 B by A rounded to bf16 (avx512bf16), exactly elsewhere', (t) =>
    eachVariant(t, (v) => {
      let seed = 300;
      let roundedOnly = 0;
      const shapes = [...EDGE_SHAPES, ...LARGE_SHAPES];
      for (const [m, n, k] of shapes) {
        for (const [transA, transB] of TRANSPOSES) {
          for (const bDtype of ['bf16', 'f32'] as const) {
            // A of every dtype in turn: bf16 A is packed as is, f32 and f16 A are rounded.
            const aDtype = (['f32', 'bf16', 'f16'] as const)[seed % 3];
            const spec = {
              m,
              n,
              k,
              transA,
              transB,
              aDtype,
              bDtype,
              precision: 1 as const,
              threads: 2,
            };
            roundedOnly += checkGemm(v, { ...spec, alpha: 2, beta: 1, bias: true }, seed++);
          }
        }
      }
      // The bf16 paths did run where they exist (some results are those of the rounded A).
      assert.equal(
        roundedOnly > 0,
        v.name === 'avx512bf16',
        `${v.name}: ${roundedOnly} results of rounded A`,
      );
    }));

  it('without a product term (k = 0, alpha = 0) sets C = beta * C + bias', (t) =>
    eachVariant(t, (v) => {
      checkGemm(v, { m: 5, n: 9, k: 0, beta: 0.5, bias: true, pad: 1 }, 400);
      checkGemm(v, { m: 5, n: 9, k: 0, bias: true }, 401);
      checkGemm(v, { m: 20, n: 9, k: 12, alpha: 0, beta: 2, pad: 2 }, 402);
    }));
});

describe('native benchmark probes', () => {
  it('fmaPeak and bf16DotPeak return the flops they did', (t) =>
    eachVariant(t, ({ name, addon }) => {
      const fma = addon.call(addon.kernelId('fmaPeak'), new Float64Array([1000]), 0, 1);
      // 12 chains of one vector of 4 (SSE2, NEON), 8 (AVX2) or 16 (AVX-512) lanes, 2 flops each.
      const lanes = name.startsWith('avx512') ? 16 : name === 'avx2' ? 8 : 4;
      assert.equal(fma, 1000 * 12 * 2 * lanes);
      const dot = addon.call(addon.kernelId('bf16DotPeak'), new Float64Array([1000]), 0, 1);
      assert.equal(dot, name === 'avx512bf16' ? 1000 * 12 * 64 : 0);
    }));

  it('streamRead reads the whole buffer once: the checksum of its 64-bit words', (t) =>
    eachVariant(t, ({ addon }) => {
      addon.setThreads(2);
      // Over three 1 MiB slices and a tail, so that slices and the remainder all count.
      const bytes = 3 * (1 << 20) + 8 * 13;
      const buffer = addon.alloc(bytes);
      const words = new BigUint64Array(buffer);
      let expected = 0n;
      for (let i = 0; i < words.length; i++) {
        words[i] = (BigInt(i) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
        expected = (expected + words[i]!) & 0xffffffffffffffffn;
      }
      const checksum = addon.call(
        addon.kernelId('streamRead'),
        new Float64Array([addon.address(buffer), bytes]),
        0,
        1,
      );
      addon.free(addon.address(buffer));
      assert.equal(checksum, Number(expected & ((1n << 52n) - 1n)));
    }));
});
