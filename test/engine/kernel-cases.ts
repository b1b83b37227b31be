/**
 * One test suite over the kernel registry (src/engine/kernels/registry.ts): every case runs a
 * registry kernel on a backend and compares every buffer it writes (and its result) with the
 * spec's JS reference on host copies. Shared by the CPU (test/engine/registry-kernels.test.ts)
 * and WebGPU (test/webgpu/registry-kernels.test.ts) runs, each registering the cases on the
 * kernel sets it wants covered (a WebGPU runner with tiny bindings covers chunking, a CPU host
 * that claims 64 threads covers the other work split). Every registry kernel must have a case.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Operand } from '../../src/engine/backend.ts';
import { DTYPE_BYTES, type DType } from '../../src/engine/dtype.ts';
import { f32ToBf16, f32ToBf16Scalar, f32ToF16Scalar } from '../../src/engine/half.ts';
import { adamwScalars } from '../../src/engine/kernels/adamw.ts';
import {
  KERNELS,
  type KernelName,
  type RegistryKernels,
} from '../../src/engine/kernels/registry.ts';
import type { BufferSpec, SpecParams } from '../../src/engine/kernels/spec.ts';
import { Tensor, tidyAsync } from '../../src/engine/tensor.ts';
import {
  defaultInverseFrequencies,
  ropeInverseFrequencies,
} from '../../src/models/rope-frequencies.ts';
import type { QuantType } from '../../src/engine/quant/formats.ts';
import {
  CODERS,
  bytesToWords,
  layoutOf,
  nestedOffset,
  quantize,
  type Coder,
} from '../../src/engine/quant/quantize.ts';
import { Rng } from '../../src/util/rng.ts';

type HostData = Float32Array | Int32Array | Uint16Array;

/**
 * How closely a backend must follow the reference:
 * - `exact`: the kernel does the reference's float32 operations (a backend may still fuse them);
 * - `float`: the reference runs in float64, the kernel in float32;
 * - `angles`: RoPE's cos / sin, which the CPU computes exactly and WGSL approximately.
 */
export type Precision = 'exact' | 'float' | 'angles';

/** |got − want| ≤ atol + rtol·|want|, per precision. */
export type Tolerances = Record<Precision, { rtol: number; atol: number }>;

interface KernelCase {
  kernel: KernelName;
  label: string;
  buffers: Record<string, HostData | null>;
  params: Record<string, unknown>;
  precision: Precision;
  /** Dtypes of u16 buffers (bf16 or f16); the others follow their arrays. */
  dtypes?: Record<string, DType>;
  /** Buffers passed as another buffer's operand (in place: `{ out: 'x' }`). */
  aliases?: Record<string, string>;
  /** Element offsets of buffers inside their storage (a guard element follows each). */
  offsets?: Record<string, number>;
  /** Calls in a row (state carried in the buffers, e.g. optimizer steps). */
  repeat?: number;
}

const rng = new Rng(2024);
const normals = (n: number, scale = 1) =>
  Float32Array.from({ length: n }, () => rng.normal(0, scale));
const ints = (values: number[]) => Int32Array.from(values);
const zeros = (n: number) => new Float32Array(n);

/**
 * Runs kernel `name`'s reference on host arrays, inferring each buffer's dtype from its array
 * (Float32Array / Float64Array f32, Int32Array i32); half data (Uint16Array) needs `dtypes`.
 */
export function reference<K extends KernelName>(
  name: K,
  buffers: Record<string, ArrayLike<number> | null>,
  params: SpecParams<(typeof KERNELS)[K]>,
  dtypes: Record<string, DType> = {},
): number | void {
  const inferred = Object.fromEntries(
    Object.entries(buffers).map(([buffer, data]) => [
      buffer,
      dtypes[buffer] ?? (data instanceof Int32Array ? 'i32' : 'f32'),
    ]),
  );
  const run = KERNELS[name].reference as (b: unknown, p: unknown, d: unknown) => number | void;
  return run(buffers, params, inferred);
}

// ---- cases -------------------------------------------------------------------------------------

function vectorCases(): KernelCase[] {
  const list: KernelCase[] = [];
  // 11: a SIMD tail; 100_003: enough work for the CPU's thread split and WebGPU's chunks.
  for (const n of [11, 1001, 100_003]) {
    list.push(
      {
        kernel: 'adamwStep',
        label: `3 AdamW steps of ${n} values`,
        buffers: {
          p: normals(n),
          g: normals(n, 0.01),
          m: normals(n, 0.001),
          v: Float32Array.from(normals(n, 1e-4), Math.abs),
        },
        // The step's scalars as the Trainer passes them (float64, rounded once by the kernel).
        params: {
          n,
          ...adamwScalars(1e-3, [0.9, 0.999], 1e-8, 0.01, 1 - 0.9 ** 3, 1 - 0.999 ** 3),
        },
        repeat: 3,
        precision: 'exact',
      },
      {
        kernel: 'add',
        label: `add ${n}`,
        buffers: { a: normals(n), b: normals(n), out: zeros(n) },
        params: { n },
        precision: 'exact',
      },
      {
        kernel: 'axpby',
        label: `axpby ${n}`,
        buffers: { x: normals(n), y: normals(n) },
        params: { n, alpha: 2, beta: -1 },
        precision: 'exact',
      },
      {
        kernel: 'axpby',
        label: `axpby ${n}, beta 0 ignores NaN in y`,
        buffers: { x: normals(n), y: new Float32Array(n).fill(NaN) },
        params: { n, alpha: 3, beta: 0 },
        precision: 'exact',
      },
      {
        kernel: 'dropout',
        label: `dropout ${n}`,
        buffers: { x: normals(n), out: zeros(n) },
        params: { n, p: 0.3, seed: 0xdeadbeef },
        precision: 'exact',
      },
      {
        kernel: 'dropout',
        label: `dropout ${n} in place`,
        buffers: { x: normals(n), out: null },
        aliases: { out: 'x' },
        params: { n, p: 0.05, seed: 7 },
        precision: 'exact',
      },
      {
        kernel: 'scaleByScalar',
        label: `scaleByScalar ${n}`,
        buffers: { x: normals(n), factor: Float32Array.of(0.75) },
        params: { n, divisor: 3 },
        precision: 'exact',
      },
      {
        kernel: 'sumSquares',
        label: `sumSquares ${n}`,
        buffers: { x: normals(n) },
        params: { n },
        precision: 'float',
      },
    );
  }
  const special = Float32Array.from([
    ...normals(37, 10),
    ...[1e-7, -3e-5, 65519, 65520, 1e6, -0, Infinity, -Infinity, NaN, 0.1, 1 / 3],
    ...[1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38],
  ]);
  const n = special.length;
  for (const half of ['bf16', 'f16'] as const) {
    const narrow = half === 'bf16' ? f32ToBf16Scalar : f32ToF16Scalar;
    list.push(
      {
        kernel: 'convert',
        label: `f32 -> ${half} at an odd half offset (word-mates kept)`,
        buffers: { src: special, dst: new Uint16Array(n).fill(0xabcd) },
        dtypes: { dst: half },
        offsets: { dst: 1 },
        params: { n },
        precision: 'exact',
      },
      {
        kernel: 'convert',
        label: `${half} at an odd offset -> f32`,
        buffers: { src: Uint16Array.from(special, narrow), dst: zeros(n) },
        dtypes: { src: half },
        offsets: { src: 1 },
        params: { n },
        precision: 'exact',
      },
    );
  }
  list.push(
    {
      kernel: 'convert',
      label: 'f16 -> bf16',
      buffers: { src: Uint16Array.from(special, f32ToF16Scalar), dst: new Uint16Array(n) },
      dtypes: { src: 'f16', dst: 'bf16' },
      params: { n },
      precision: 'exact',
    },
    {
      kernel: 'fill',
      label: 'fill f32',
      buffers: { x: normals(37) },
      params: { n: 37, value: -2.5 },
      precision: 'exact',
    },
    {
      kernel: 'fill',
      label: 'fill i32',
      buffers: { x: new Int32Array(5).fill(9) },
      params: { n: 5, value: -7 },
      precision: 'exact',
    },
    {
      kernel: 'sumSquares',
      label: 'sumSquares of nothing is 0',
      buffers: { x: Float32Array.of(5) },
      params: { n: 0 },
      precision: 'exact',
    },
  );
  return list;
}

/** Key mask and segment ids [B, kvCap]: left padding in row 1, two documents per row. */
function masks(B: number, kvCap: number) {
  const keyMask = Int32Array.from({ length: B * kvCap }, (_, i) =>
    i % kvCap < (i >= kvCap ? 4 : 0) ? 0 : 1,
  );
  const segIds = Int32Array.from(
    { length: B * kvCap },
    (_, i) => 1 + Math.floor(((i % kvCap) * (2 + (i >= kvCap ? 1 : 0))) / kvCap),
  );
  return { keyMask, segIds };
}

interface AttentionShape {
  B: number;
  T: number;
  H: number;
  KVH: number;
  D: number;
  mask?: boolean;
  seg?: boolean;
  window?: number;
}

function attentionCases(): KernelCase[] {
  const list: KernelCase[] = [];
  const shapes: AttentionShape[] = [
    { B: 2, T: 37, H: 4, KVH: 2, D: 16 },
    { B: 2, T: 37, H: 2, KVH: 1, D: 16, mask: true, seg: true },
    { B: 2, T: 7, H: 4, KVH: 2, D: 6, mask: true, seg: true, window: 3 },
    { B: 2, T: 19, H: 4, KVH: 2, D: 16, window: 5 },
    { B: 1, T: 35, H: 2, KVH: 1, D: 64, mask: true, seg: true },
    { B: 1, T: 40, H: 4, KVH: 1, D: 128, seg: true },
  ];
  for (const s of shapes) {
    const { B, T, H, KVH, D, window = 0 } = s;
    const label = `B${B} T${T} H${H}/${KVH} D${D}${s.mask ? ' masked' : ''}${s.seg ? ' packed' : ''}${window ? ` window ${window}` : ''}`;
    const { keyMask, segIds } = masks(B, T);
    const inputs = {
      q: normals(B * T * H * D),
      k: normals(B * T * KVH * D),
      v: normals(B * T * KVH * D),
    };
    const optional = { keyMask: s.mask ? keyMask : null, segIds: s.seg ? segIds : null };
    const scale = 1 / Math.sqrt(D);
    const out = zeros(B * T * H * D);
    const lse = zeros(B * H * T);
    const forward = { B, Tq: T, Tk: T, kvCap: T, H, KVH, D, scale, window };
    list.push({
      kernel: 'attentionForward',
      label,
      buffers: { ...inputs, out: out.slice().fill(NaN), lse: lse.slice(), ...optional },
      params: forward,
      precision: 'float',
    });
    reference('attentionForward', { ...inputs, out, lse, ...optional }, forward);
    list.push({
      kernel: 'attentionBackward',
      label,
      buffers: {
        ...inputs,
        out,
        lse,
        dout: normals(out.length),
        dq: new Float32Array(out.length).fill(NaN),
        dk: new Float32Array(inputs.k.length).fill(NaN),
        dv: new Float32Array(inputs.v.length).fill(NaN),
        ...optional,
      },
      params: { B, T, H, KVH, D, scale, window },
      precision: 'float',
    });
  }
  // Decoding against a KV cache: 3 queries at positions 17..19 of 20 valid cache rows out of 24,
  // NaN in the rows past Tk, left padding.
  const [B, Tq, Tk, kvCap, H, KVH, D] = [2, 3, 20, 24, 4, 1, 64];
  const cache = () => {
    const rows = normals(B * kvCap * KVH * D);
    for (let b = 0; b < B; b++)
      rows.fill(NaN, (b * kvCap + Tk) * KVH * D, (b + 1) * kvCap * KVH * D);
    return rows;
  };
  list.push({
    kernel: 'attentionForward',
    label: 'decode: Tq < Tk < kvCap, NaN past Tk, left padding',
    buffers: {
      q: normals(B * Tq * H * D),
      k: cache(),
      v: cache(),
      out: zeros(B * Tq * H * D),
      lse: zeros(B * H * Tq),
      keyMask: masks(B, kvCap).keyMask,
      segIds: null,
    },
    params: { B, Tq, Tk, kvCap, H, KVH, D, scale: 0.3, window: 0 },
    precision: 'float',
  });
  // One new token against a long cache (WebGPU splits these keys over workgroups and merges),
  // with masked keys and a sliding window so that some splits see no key at all.
  const long = { B: 1, Tq: 1, Tk: 300, kvCap: 320, H: 4, KVH: 2, D: 64 };
  const longCache = () => normals(long.B * long.kvCap * long.KVH * long.D);
  list.push({
    kernel: 'attentionForward',
    label: 'long decode: Tq = 1 over 300 keys, masked, window 200',
    buffers: {
      q: normals(long.B * long.Tq * long.H * long.D),
      k: longCache(),
      v: longCache(),
      out: zeros(long.B * long.Tq * long.H * long.D),
      lse: zeros(long.B * long.H * long.Tq),
      keyMask: masks(long.B, long.kvCap).keyMask,
      segIds: null,
    },
    params: { ...long, scale: 0.125, window: 200 },
    precision: 'float',
  });
  return list;
}

function normAndRopeCases(): KernelCase[] {
  const list: KernelCase[] = [];
  for (const [rows, dim] of [
    [5, 300], // more than one WebGPU workgroup's worth of columns
    [10, 8],
  ] as const) {
    const x = normals(rows * dim, 2);
    const w = normals(dim);
    const rstd = zeros(rows);
    const eps = 1e-6;
    for (const saved of [true, false]) {
      list.push({
        kernel: 'rmsnormForward',
        label: `${rows}x${dim}${saved ? '' : ', rstd skipped'}`,
        buffers: { x, w, out: zeros(rows * dim), rstd: saved ? rstd.slice() : null },
        params: { rows, dim, eps },
        precision: 'float',
      });
    }
    reference('rmsnormForward', { x, w, out: zeros(rows * dim), rstd }, { rows, dim, eps });
    for (const accumulate of [true, false]) {
      list.push({
        kernel: 'rmsnormBackward',
        label: `${rows}x${dim}${accumulate ? ', dw accumulated' : ', dw skipped'}`,
        buffers: {
          x,
          w,
          rstd,
          dout: normals(rows * dim),
          dx: zeros(rows * dim),
          dw: accumulate ? normals(dim) : null,
        },
        params: { rows, dim },
        precision: 'float',
      });
    }
  }
  const [B, T, H, D] = [2, 5, 3, 64];
  const positions = Int32Array.from({ length: B * T }, (_, i) => (i * 97) % 1000);
  const tables = {
    default: ropeInverseFrequencies(D, 500000, null),
    // Llama 3.2's scaling: at D = 64 pairs are kept, blended and divided by the factor.
    llama3: ropeInverseFrequencies(D, 500000, {
      type: 'llama3',
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    }),
  };
  for (const [name, invFreq] of Object.entries(tables)) {
    for (const inverse of [false, true]) {
      list.push({
        kernel: 'ropeApply',
        label: `${name} table${inverse ? ', inverse in place' : ''}`,
        buffers: {
          x: normals(B * T * H * D),
          out: inverse ? null : zeros(B * T * H * D),
          positions,
          invFreq,
        },
        aliases: inverse ? { out: 'x' } : {},
        // An offset exercises WebGPU's binding realignment.
        offsets: { invFreq: 3 },
        params: { B, T, H, D, inverse, rotaryDim: D, scale: 1 },
        precision: 'float',
      });
    }
  }
  // Partial rotary (Phi-3: 48 of 64 values turn, the rest pass through) with LongRoPE's scaled
  // cos / sin, and rotaryDim 12 of 16 (one 4-wide group and 2 single pairs on the CPU).
  for (const [Dp, rotaryDim] of [
    [64, 48],
    [16, 12],
  ] as const) {
    for (const inverse of [false, true]) {
      list.push({
        kernel: 'ropeApply',
        label: `rotaryDim ${rotaryDim} of ${Dp}, scale 1.19${inverse ? ', inverse in place' : ''}`,
        buffers: {
          x: normals(B * T * H * Dp),
          out: inverse ? null : zeros(B * T * H * Dp),
          positions,
          invFreq: ropeInverseFrequencies(rotaryDim, 10000, null),
        },
        aliases: inverse ? { out: 'x' } : {},
        params: { B, T, H, D: Dp, inverse, rotaryDim, scale: 1.19 },
        precision: 'float',
      });
    }
  }
  // Each pair (1, 0) turns into (cos, sin) of the float32 angle: bit for bit on the CPU.
  const unit = new Float32Array(1 * 6 * 1 * 16);
  for (let t = 0; t < 6; t++) unit.fill(1, t * 16, t * 16 + 8);
  list.push({
    kernel: 'ropeApply',
    label: 'unit pairs give the float32 cos / sin',
    buffers: {
      x: unit,
      out: zeros(unit.length),
      positions: ints([0, 1, 2, 7, 300, 40000]),
      invFreq: defaultInverseFrequencies(16, 10000),
    },
    params: { B: 1, T: 6, H: 1, D: 16, inverse: false, rotaryDim: 16, scale: 1 },
    precision: 'angles',
  });
  return list;
}

function gatedCases(): KernelCase[] {
  const list: KernelCase[] = [];
  for (const activation of ['silu', 'gelu_tanh'] as const) {
    for (const n of [11, 1001]) {
      const gate = normals(n, 4);
      gate.set([100, -100, 0, -88, 89]);
      const [up, dout] = [normals(n), normals(n)];
      list.push(
        {
          kernel: 'gatedForward',
          label: `${activation} ${n}`,
          buffers: { gate, up, out: zeros(n) },
          params: { n, activation },
          precision: 'float',
        },
        {
          kernel: 'gatedBackward',
          label: `${activation} ${n}, in place over gate and up`,
          buffers: { gate, up, dout, dgate: null, dup: null },
          aliases: { dgate: 'gate', dup: 'up' },
          params: { n, activation },
          precision: 'float',
        },
      );
    }
  }
  return list;
}

function crossEntropyCases(): KernelCase[] {
  const [rows, cols, accCols] = [5, 300, 24];
  // Rows 0-1 start (−∞ / 0), rows 2-4 carry an earlier chunk's max below / above this chunk's.
  const runMax = Float32Array.from([-Infinity, -Infinity, 1, 30, -5]);
  const runSum = Float32Array.from([0, 0, 2.5, 1.25, 7]);
  const targets = ints([310, 450, -100, 320, 5]);
  const logits = normals(rows * cols, 8);
  return [
    {
      kernel: 'ceOnlineChunk',
      label: 'chunk at 300 with an accumulator',
      buffers: {
        logits,
        targets,
        runMax,
        runSum,
        tgtLogit: zeros(rows),
        acc: normals(rows * accCols),
      },
      params: { rows, cols, colOffset: 300, accCols },
      precision: 'float',
    },
    {
      kernel: 'ceOnlineChunk',
      label: 'first chunk, no accumulator',
      buffers: {
        logits,
        targets,
        runMax: new Float32Array(rows).fill(-Infinity),
        runSum: zeros(rows),
        tgtLogit: zeros(rows),
        acc: null,
      },
      params: { rows, cols, colOffset: 0, accCols: 0 },
      precision: 'float',
    },
    {
      kernel: 'ceOnlineFinish',
      label: '5 rows',
      buffers: {
        acc: normals(rows * accCols),
        runSum: Float32Array.from([1, 2.5, 300, 0.75, 9]),
        targetRows: normals(rows * accCols),
      },
      params: { rows, cols: accCols, scale: 0.125 },
      precision: 'float',
    },
    {
      kernel: 'ceChunkBackward',
      label: 'a zero row scale gives zeros',
      buffers: {
        logits,
        targets,
        lse: Float32Array.from([9, 10, 11, 12, 13]),
        rowScale: Float32Array.from([0.5, 1, 2, 0, 0.25]),
      },
      params: { rows, cols, colOffset: 300 },
      precision: 'float',
    },
    {
      kernel: 'ceLossFinish',
      label: '5 rows',
      buffers: {
        runMax: normals(rows, 3),
        runSum: Float32Array.from([1, 2.5, 300, 0.75, 9]),
        tgtLogit: normals(rows, 3),
        lse: zeros(rows),
        loss: zeros(1),
      },
      params: { rows, divisor: 3 },
      precision: 'float',
    },
  ];
}

function rowCases(): KernelCase[] {
  const [vocab, dim] = [40, 6];
  const ids = ints([3, 39, 0, 3, 17, 3]);
  const count = ids.length;
  const table = normals(vocab * dim);
  const [rows, cols] = [4, 300];
  const matrix = normals(10 * cols);
  return [
    {
      kernel: 'embeddingForward',
      label: 'f32 table, repeated ids',
      buffers: { table, ids, out: zeros(count * dim) },
      params: { count, dim },
      precision: 'exact',
    },
    {
      kernel: 'embeddingForward',
      label: 'bf16 table',
      buffers: { table: Uint16Array.from(table, f32ToBf16Scalar), ids, out: zeros(count * dim) },
      dtypes: { table: 'bf16' },
      params: { count, dim },
      precision: 'exact',
    },
    {
      kernel: 'embeddingBackward',
      label: 'repeated ids add up',
      buffers: { dout: normals(count * dim), ids, dTable: normals(vocab * dim) },
      params: { count, dim },
      precision: 'float',
    },
    {
      kernel: 'gatherRows',
      label: 'f32 rows, repeated',
      buffers: { src: matrix, idx: ints([8, 0, 5, 0]), dst: zeros(rows * cols) },
      params: { rows, cols },
      precision: 'exact',
    },
    {
      kernel: 'gatherRows',
      label: 'i32 ids (one column)',
      buffers: { src: ints([5, 6, 7, 8, 9]), idx: ints([4, 0, 2]), dst: new Int32Array(3) },
      params: { rows: 3, cols: 1 },
      precision: 'exact',
    },
    {
      kernel: 'gatherRows',
      label: 'bf16 rows',
      buffers: {
        src: Uint16Array.from(matrix, f32ToBf16Scalar),
        idx: ints([9, 1]),
        dst: new Uint16Array(2 * cols),
      },
      dtypes: { src: 'bf16', dst: 'bf16' },
      params: { rows: 2, cols },
      precision: 'exact',
    },
    {
      kernel: 'scatterRows',
      label: 'distinct rows',
      buffers: { src: normals(rows * cols), idx: ints([2, 7, 4, 1]), dst: matrix },
      params: { rows, cols },
      precision: 'exact',
    },
    {
      kernel: 'scatterAddRows',
      label: 'repeated rows add up',
      buffers: { src: normals(rows * cols), idx: ints([2, 7, 2, 1]), dst: matrix },
      params: { rows, cols },
      precision: 'float',
    },
    {
      kernel: 'sumRows',
      label: '10 rows of 300, accumulating',
      buffers: { x: matrix, out: normals(cols) },
      params: { rows: 10, cols },
      precision: 'float',
    },
    {
      kernel: 'scaleColumns',
      label: '10 rows of 300',
      buffers: { x: matrix, scale: normals(cols), out: zeros(10 * cols) },
      params: { rows: 10, cols },
      precision: 'float',
    },
    {
      kernel: 'columnDots',
      label: '10 rows of 300, accumulating',
      buffers: { a: matrix, b: normals(10 * cols), out: normals(cols) },
      params: { rows: 10, cols },
      precision: 'float',
    },
  ];
}

/** Quantized matrices in each format, their rows dequantized whole or from an offset. */
function quantCases(): KernelCase[] {
  const list: KernelCase[] = [];
  const formats: [QuantType, boolean][] = [
    ['nf4', false],
    ['fp4', true],
    ['int8', false],
  ];
  // 37 × 45: blocks of 64 straddle rows and the count is odd; 400 × 260: 1625 blocks (7 nested
  // blocks, the last partial) and enough work for the CPU's thread split.
  for (const [rows, cols] of [
    [37, 45],
    [400, 260],
  ] as const) {
    for (const [type, doubleQuant] of formats) {
      const q = quantize(normals(rows * cols, 0.05), [rows, cols], type, { doubleQuant });
      const layout = layoutOf(q);
      for (const [firstRow, count] of [
        [0, rows],
        [5, rows - 9],
      ]) {
        list.push({
          kernel: 'dequantizeRows',
          label: `${type}${doubleQuant ? ' double quant' : ''} [${rows}, ${cols}] rows ${firstRow}+${count}`,
          buffers: {
            codes: bytesToWords(q.codes),
            absmax: q.nested ? bytesToWords(q.nested.codes) : q.absmax!,
            nestedAbsmax: q.nested?.absmax ?? null,
            table: q.table,
            nestedTable: q.nested?.table ?? null,
            out: zeros(count * cols),
          },
          params: {
            firstRow,
            rows: count,
            cols,
            bits: layout.bits,
            blockSize: q.blockSize,
            nested: q.nested !== null,
            nestedBlockSize: q.nested?.blockSize ?? 0,
            nestedOffset: q.nested?.offset ?? 0,
            postScale: layout.postScale,
          },
          precision: 'exact',
        });
      }
    }
  }
  // x times rows of W: odd shapes one code at a time, whole 16-code groups through the CPU's
  // byte-plane swizzles (cols % 16 = 0), a bias, an output stride wider than the rows computed.
  for (const [type, doubleQuant, rows, cols, m] of [
    ['nf4', false, 37, 45, 2],
    ['nf4', true, 300, 256, 1],
    ['fp4', false, 40, 128, 3],
    ['int8', false, 20, 64, 2],
  ] as const) {
    const q = quantize(normals(rows * cols, 0.05), [rows, cols], type, { doubleQuant });
    const layout = layoutOf(q);
    const [firstRow, count, ldy] = [3, rows - 5, rows];
    list.push({
      kernel: 'quantizedMatmul',
      label: `${m} × ${type}${doubleQuant ? ' double quant' : ''} [${rows}, ${cols}] rows ${firstRow}+${count}`,
      buffers: {
        x: normals(m * cols),
        codes: bytesToWords(q.codes),
        absmax: q.nested ? bytesToWords(q.nested.codes) : q.absmax!,
        nestedAbsmax: q.nested?.absmax ?? null,
        table: q.table,
        nestedTable: q.nested?.table ?? null,
        bias: type === 'fp4' ? normals(count) : null,
        y: zeros(m * ldy),
      },
      params: {
        rows: m,
        cols,
        firstRow,
        count,
        ldy,
        bits: layout.bits,
        blockSize: q.blockSize,
        nested: q.nested !== null,
        nestedBlockSize: q.nested?.blockSize ?? 0,
        nestedOffset: q.nested?.offset ?? 0,
        postScale: layout.postScale,
      },
      precision: 'float',
    });
  }
  return list;
}

/**
 * Flat values in blocks of 64 to quantize: a zero block, a block holding 1 and the coder's
 * midpoints (ties, which go to the lower code) at both signs, then normals.
 */
function quantizeInput(n: number, coder: Coder | null): Float32Array {
  const x = normals(n, 0.05);
  x.fill(0, 0, 64);
  if (coder) {
    x[64] = 1;
    coder.bounds.forEach((b, i) => ((x[65 + 2 * i] = b), (x[66 + 2 * i] = -b)));
  }
  return x;
}

/** Blocks of a flat tensor quantized: each format and source dtype, odd counts, nesting. */
function quantizeCases(): KernelCase[] {
  const list: KernelCase[] = [];
  const cases = [
    ['nf4', 'f32', 1665, 64],
    ['fp4', 'bf16', 104_000, 64],
    ['int8', 'f32', 37 * 45, 45],
    ['int8', 'bf16', 400 * 261, 261],
    ['dynamic', 'f32', 1625, 256],
  ] as const;
  for (const [format, source, n, blockSize] of cases) {
    const coder = format === 'int8' ? null : CODERS[format];
    const values = quantizeInput(n, coder);
    // Double quantization's input: positive absmax values around an offset.
    if (format === 'dynamic') values.forEach((v, i) => (values[i] = Math.abs(v) + 0.01));
    const bits = format === 'nf4' || format === 'fp4' ? 4 : 8;
    const codeWords = Math.ceil((bits === 4 ? Math.ceil(n / 2) : n) / 4);
    list.push({
      kernel: 'quantizeRows',
      label: `${format} of ${n} ${source} values, blocks of ${blockSize}`,
      buffers: {
        x: source === 'bf16' ? f32ToBf16(values) : values,
        bounds: coder?.bounds ?? null,
        codeOf: coder ? Int32Array.from(coder.codes) : null,
        // Garbage the kernel must overwrite: every code byte is written whole.
        codes: new Int32Array(codeWords).fill(-1),
        absmax: zeros(Math.ceil(n / blockSize)),
      },
      params: {
        n,
        blockSize,
        bits,
        mode: !coder ? 'int8' : coder.signBit ? 'signed' : 'nearest',
        offset: format === 'dynamic' ? nestedOffset(values) : 0,
        source,
      },
      dtypes: source === 'bf16' ? { x: 'bf16' } : {},
      precision: 'exact',
    });
  }
  return list;
}

function cases(): KernelCase[] {
  return [
    ...vectorCases(),
    ...attentionCases(),
    ...normAndRopeCases(),
    ...gatedCases(),
    ...crossEntropyCases(),
    ...rowCases(),
    ...quantCases(),
    ...quantizeCases(),
  ];
}

// ---- running -----------------------------------------------------------------------------------

function dtypeOf(data: HostData, declared: DType | undefined): DType {
  if (declared) return declared;
  return data instanceof Int32Array ? 'i32' : 'f32';
}

function typedArray(bytes: Uint8Array, dtype: DType): HostData {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const copy = bytes.slice();
  if (dtype === 'f32') return new Float32Array(copy.buffer, 0, n);
  return dtype === 'i32' ? new Int32Array(copy.buffer, 0, n) : new Uint16Array(copy.buffer, 0, n);
}

function assertClose(
  got: HostData,
  want: HostData,
  { rtol, atol }: { rtol: number; atol: number },
  what: string,
) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i]!, want[i]!];
    if (Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w))) continue;
    const ok =
      want instanceof Uint16Array || !Number.isFinite(w)
        ? false
        : Math.abs(g - w) <= atol + rtol * Math.abs(w);
    assert.ok(ok, `${what}[${i}]: got ${g}, expected ${w}`);
  }
}

async function runCase(kernels: RegistryKernels, c: KernelCase, tol: Tolerances): Promise<void> {
  const specBuffers = KERNELS[c.kernel].buffers as Record<string, BufferSpec>;
  const aliases = c.aliases ?? {};
  const offsets = c.offsets ?? {};
  const owned = Object.entries(c.buffers).filter(([name]) => !(name in aliases));
  // Host copies, with room for the offset and one guard element after the data.
  const padded: Record<string, HostData | null> = {};
  const host: Record<string, HostData | null> = {};
  const dtypes: Record<string, DType> = {};
  for (const [name, data] of owned) {
    if (!data) {
      padded[name] = host[name] = null;
      continue;
    }
    const offset = offsets[name] ?? 0;
    const guard = offset > 0 ? 1 : 0;
    const whole = new (data.constructor as new (n: number) => HostData)(
      offset + data.length + guard,
    );
    whole.fill(0x5a5a);
    whole.set(data, offset);
    padded[name] = whole;
    host[name] = whole.subarray(offset, offset + data.length);
    dtypes[name] = dtypeOf(data, c.dtypes?.[name]);
  }
  for (const [name, target] of Object.entries(aliases)) {
    host[name] = host[target]!;
    dtypes[name] = dtypes[target]!;
  }
  await tidyAsync(async () => {
    const tensors: Record<string, Tensor | null> = {};
    const operands: Record<string, Operand | null> = {};
    for (const [name, whole] of Object.entries(padded)) {
      const t = whole && Tensor.from(whole, [whole.length], dtypes[name]);
      tensors[name] = t;
      operands[name] = t && {
        ...t.operand(),
        byteOffset: t.byteOffset + (offsets[name] ?? 0) * DTYPE_BYTES[dtypes[name]!],
      };
    }
    for (const [name, target] of Object.entries(aliases)) operands[name] = operands[target]!;
    const run = kernels[c.kernel] as (b: unknown, p: unknown) => Promise<number> | void;
    let expected: number | void = undefined;
    let got: number | void = undefined;
    for (let i = 0; i < (c.repeat ?? 1); i++) {
      expected = reference(c.kernel, host, c.params as never, dtypes);
      got = await run(operands, c.params);
    }
    const tolerance = tol[c.precision];
    if (expected !== undefined) {
      const result = Float32Array.of(got as number);
      assertClose(result, Float32Array.of(expected), tolerance, `${c.label}: result`);
    }
    for (const [name, spec] of Object.entries(specBuffers)) {
      const t = tensors[name];
      if (spec.access === 'read' || !t) continue;
      const values = typedArray(await t.bytesOut(), t.dtype);
      assertClose(values, padded[name]!, tolerance, `${c.kernel} ${c.label}: ${name}`);
    }
  });
}

/** Registers one test per registry kernel (or per kernel of `only`), running all of its cases on `kernels()`. */
export function registerKernelCases(
  label: string,
  kernels: () => RegistryKernels,
  tolerances: Tolerances,
  options: {
    skip?: string | false;
    only?: readonly KernelName[];
    /** Kernels this backend does not implement yet, and why. */
    missing?: Partial<Record<KernelName, string>>;
  } = {},
): void {
  const all = cases();
  for (const name of options.only ?? (Object.keys(KERNELS) as KernelName[])) {
    const skip = options.skip || options.missing?.[name];
    test(`${label}: ${name} matches its reference`, { skip }, async () => {
      const mine = all.filter((c) => c.kernel === name);
      assert.ok(mine.length > 0, `no test case for registry kernel ${name}`);
      for (const c of mine) await runCase(kernels(), c, tolerances);
    });
  }
}
