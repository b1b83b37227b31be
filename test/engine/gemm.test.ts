import '../../src/engine/cpu/node-host.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WasmRuntime, type GemmArgs, type MatrixDtype } from '../../src/engine/cpu/runtime.ts';
import { NativeRuntime } from '../../src/engine/native/runtime.ts';
import { nativeTestVariants } from '../cpu-backends.ts';
import { bf16ToF32Scalar, f16ToF32Scalar } from '../../src/engine/half.ts';
import { xorshiftRandom } from '../random.ts';

/** What the GEMM checks need of a CPU runtime (WasmRuntime and NativeRuntime both offer it). */
type GemmRuntime = Pick<WasmRuntime, 'malloc' | 'free' | 'f32' | 'u16' | 'gemm' | 'dispose'>;

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** A matrix in wasm memory plus the exact values (as JS numbers) the kernel must read. */
interface Operand {
  ptr: number;
  values: Float64Array; // element i of the stored array, widened
}

function makeOperand(
  rt: GemmRuntime,
  count: number,
  dtype: MatrixDtype,
  next: () => number,
): Operand {
  const values = new Float64Array(count);
  if (dtype === 'f32') {
    const ptr = rt.malloc(count * 4);
    const view = rt.f32(ptr, count);
    for (let i = 0; i < count; i++) values[i] = view[i] = next();
    return { ptr, values };
  }
  const ptr = rt.malloc(count * 2);
  const view = rt.u16(ptr, count);
  for (let i = 0; i < count; i++) {
    if (dtype === 'bf16') {
      scratchF32[0] = next();
      view[i] = scratchU32[0] >>> 16;
      values[i] = bf16ToF32Scalar(view[i]);
    } else {
      // Random finite halves around 1, some of them subnormal.
      const sign = next() < 0 ? 0x8000 : 0;
      const exponent = i % 11 === 0 ? 0 : 12 + Math.floor((next() + 1) * 2.5);
      const mantissa = Math.floor((next() + 1) * 511.9);
      view[i] = sign | (exponent << 10) | mantissa;
      values[i] = f16ToF32Scalar(view[i]);
    }
  }
  return { ptr, values };
}

interface Case {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  aDtype?: MatrixDtype;
  bDtype?: MatrixDtype;
  alpha?: number;
  beta?: number;
  bias?: boolean;
  /** Extra elements per stored row (leading dimension larger than the row). */
  pad?: number;
}

/** Runs one GEMM in wasm and checks it against a float64 reference. */
/** `relative`: the error allowed per unit of Σ|a·b| (float32 accumulation: 1e-5). */
function checkGemm(rt: GemmRuntime, spec: Case, seed = 1, relative = 1e-5): void {
  const { m, n, k, transA = false, transB = false, aDtype = 'f32', bDtype = 'f32', pad = 0 } = spec;
  const next = xorshiftRandom(seed);
  const aRows = transA ? k : m;
  const lda = (transA ? m : k) + pad;
  const bRows = transB ? n : k;
  const ldb = (transB ? k : n) + pad;
  const ldc = n + pad;
  const a = makeOperand(rt, Math.max(1, aRows * lda), aDtype, next);
  const b = makeOperand(rt, Math.max(1, bRows * ldb), bDtype, next);
  const c = makeOperand(rt, Math.max(1, m * ldc), 'f32', next);
  const bias = spec.bias ? makeOperand(rt, Math.max(1, n), 'f32', next) : undefined;
  const beta = spec.beta ?? 0;
  const alpha = spec.alpha ?? 1;
  // beta = 0 must not read C: poison it.
  if (beta === 0) rt.f32(c.ptr, c.values.length).fill(NaN);

  const args: GemmArgs = {
    m,
    n,
    k,
    a: a.ptr,
    lda,
    transA,
    aDtype,
    b: b.ptr,
    ldb,
    transB,
    bDtype,
    c: c.ptr,
    ldc,
    alpha: spec.alpha,
    beta: spec.beta,
    bias: bias?.ptr,
  };
  rt.gemm(args);

  const got = rt.f32(c.ptr, c.values.length);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let magnitude = 0;
      for (let p = 0; p < k; p++) {
        const av = a.values[transA ? p * lda + i : i * lda + p];
        const bv = b.values[transB ? j * ldb + p : p * ldb + j];
        sum += av * bv;
        magnitude += Math.abs(av * bv);
      }
      let expected = alpha * sum;
      magnitude *= Math.abs(alpha);
      if (beta !== 0) {
        expected += beta * c.values[i * ldc + j];
        magnitude += Math.abs(beta * c.values[i * ldc + j]);
      }
      if (bias) {
        expected += bias.values[j];
        magnitude += Math.abs(bias.values[j]);
      }
      const actual = got[i * ldc + j];
      const tolerance = relative * magnitude + 1e-30;
      if (!(Math.abs(actual - expected) <= tolerance)) {
        assert.fail(
          `${JSON.stringify(spec)}: C[${i},${j}] = ${actual}, expected ${expected} (tolerance ${tolerance})`,
        );
      }
    }
    // Padding columns of C must be untouched.
    for (let j = n; j < ldc; j++) {
      const before = beta === 0 ? NaN : c.values[i * ldc + j];
      assert.ok(
        Object.is(got[i * ldc + j], Math.fround(before)),
        `C padding [${i},${j}] was written`,
      );
    }
  }
  for (const operand of [a, b, c, bias]) if (operand) rt.free(operand.ptr);
}

const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [3, 5, 7],
  [6, 8, 256],
  [7, 9, 257],
  [17, 33, 65],
  [130, 70, 300],
  [1, 300, 64], // decode-like: a single row
  [2, 45, 77], // two rows: the dot-product path when B is transposed
  [300, 10, 513], // narrow output, several K slices: split over rows
  [64, 600, 40], // wide output: split over columns
  [5, 2100, 9], // more columns than one column block
  [2, 4000, 200], // dot-product path big enough to be split over threads
];
const TRANSPOSES = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

/** Every CPU runtime: wasm, and each native ISA variant this CPU runs (exact precision). */
const RUNTIMES: { label: string; create: (threads: number) => Promise<GemmRuntime> }[] = [
  { label: 'wasm', create: (threads) => WasmRuntime.create({ threads }) },
  ...nativeTestVariants().variants.map((variant) => ({
    label: `native ${variant}`,
    create: async (threads: number) => NativeRuntime.create({ threads, variant }),
  })),
];
const nativeSkip = nativeTestVariants().skip;
if (nativeSkip) it('native gemm', { skip: nativeSkip }, () => {});

for (const { label, create } of RUNTIMES)
  for (const threads of [1, 2]) {
    describe(`${label} gemm with ${threads} thread(s)`, () => {
      let rt: GemmRuntime;
      before(async () => {
        rt = await create(threads);
      });
      after(() => rt.dispose());

      it('matches the float64 reference for odd shapes and every transpose combination', () => {
        let seed = 1;
        for (const [m, n, k] of SHAPES) {
          for (const [transA, transB] of TRANSPOSES)
            checkGemm(rt, { m, n, k, transA, transB }, seed++);
        }
      });

      it('widens bf16 and f16 operands (A and B, both layouts)', () => {
        let seed = 100;
        for (const [m, n, k] of [
          [1, 33, 65],
          [2, 9, 130],
          [3, 5, 7],
          [5, 40, 300], // bf16 B transposed: dot path, k in whole groups of 16 plus a tail
          [1, 301, 1000],
          [17, 33, 65],
          [130, 70, 300],
        ] as const) {
          for (const dtype of ['bf16', 'f16'] as const) {
            for (const [transA, transB] of TRANSPOSES) {
              checkGemm(rt, { m, n, k, transA, transB, bDtype: dtype }, seed++);
              checkGemm(rt, { m, n, k, transA, transB, aDtype: dtype }, seed++);
            }
            checkGemm(rt, { m, n, k, aDtype: dtype, bDtype: dtype, transB: true }, seed++);
          }
        }
      });

      it('applies alpha, beta and bias', () => {
        let seed = 200;
        for (const [m, n, k] of [
          [1, 1, 1],
          [7, 9, 257],
          [130, 70, 300],
          [64, 600, 40],
        ] as const) {
          checkGemm(rt, { m, n, k, alpha: 0.5, beta: 1 }, seed++);
          checkGemm(rt, { m, n, k, alpha: -2, beta: 0.25, bias: true, transB: true }, seed++);
          checkGemm(rt, { m, n, k, bias: true, transA: true }, seed++);
          checkGemm(rt, { m, n, k, beta: 1, bias: true, bDtype: 'bf16', transB: true }, seed++);
        }
      });

      it('handles leading dimensions larger than the rows', () => {
        checkGemm(rt, { m: 13, n: 19, k: 23, pad: 5 }, 300);
        checkGemm(rt, { m: 13, n: 19, k: 23, pad: 3, transA: true, transB: true, beta: 1 }, 301);
        checkGemm(rt, { m: 40, n: 200, k: 30, pad: 1, transB: true, bDtype: 'bf16' }, 302);
      });

      it('handles k = 0 and alpha = 0 as C = beta * C + bias', () => {
        checkGemm(rt, { m: 4, n: 9, k: 0, beta: 0.5, bias: true }, 400);
        checkGemm(rt, { m: 4, n: 9, k: 0 }, 401);
        checkGemm(rt, { m: 9, n: 4, k: 5, alpha: 0, beta: 2 }, 402);
      });

      it('ignores empty outputs', () => {
        rt.gemm({
          m: 0,
          n: 5,
          k: 3,
          a: 0,
          lda: 3,
          transA: false,
          aDtype: 'f32',
          b: 0,
          ldb: 5,
          transB: false,
          bDtype: 'f32',
          c: 0,
          ldc: 5,
        });
        rt.gemm({
          m: 5,
          n: 0,
          k: 3,
          a: 0,
          lda: 3,
          transA: false,
          aDtype: 'f32',
          b: 0,
          ldb: 0,
          transB: false,
          bDtype: 'f32',
          c: 0,
          ldc: 0,
        });
      });

      it('rejects leading dimensions shorter than the rows', () => {
        assert.throws(
          () =>
            rt.gemm({
              m: 2,
              n: 3,
              k: 4,
              a: 64,
              lda: 3,
              transA: false,
              aDtype: 'f32',
              b: 64,
              ldb: 3,
              transB: false,
              bDtype: 'f32',
              c: 64,
              ldc: 3,
            }),
          /lda/,
        );
      });
    });
  }

// Precision 'bf16' lets bf16 weights meet A rounded to bf16 (VDPBF16PS where the CPU has it):
// each product then carries up to 2^-8 relative error from A's rounding, so the bound is
// 2^-8 of Σ|a·b| (float32 sums add far less). On variants without bf16 dot products it is exact.
for (const variant of nativeTestVariants().variants) {
  it(`native ${variant} gemm, bf16 precision: within A's bf16 rounding of the reference`, () => {
    const rt = NativeRuntime.create({ threads: 2, variant, gemmPrecision: 'bf16' });
    let seed = 500;
    for (const [m, n, k] of [
      [1, 301, 1000],
      [5, 40, 300],
      [130, 70, 300],
      [64, 600, 40],
    ] as const) {
      for (const [transA, transB] of TRANSPOSES)
        checkGemm(rt, { m, n, k, transA, transB, bDtype: 'bf16', bias: true }, seed++, 2 ** -8);
      checkGemm(rt, { m, n, k, transB: true, aDtype: 'bf16', bDtype: 'bf16' }, seed++, 1e-5);
    }
    rt.dispose();
  });
}
