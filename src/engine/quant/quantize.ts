/**
 * Quantization of a weight matrix into bitsandbytes' layouts, and the reference dequantization
 * (what the `dequantizeRows` kernel computes on every backend). All arithmetic is float32, in the
 * order bnb's kernels use, so the codes and values are bnb's bit for bit:
 *
 *   4-bit (NF4, FP4): the flat tensor in blocks of 64; absmax = max |x| of the block (clamped to
 *     1e-38 so an all-zero block gives zeros); s = x · f32(1 / absmax) clamped to [-1, 1]; the code
 *     is the nearest table value (ties to the lower one; FP4 takes the sign bit from s < 0, as the
 *     CUDA kernel does). Two codes per byte, the first element in the high nibble. Value:
 *     table[code] · absmax.
 *   double quantization (bnb's compress_statistics): offset = mean(absmax); absmax − offset is
 *     quantized blockwise (256) to the dynamic 8-bit map the same way; absmax is recovered as
 *     dynamic[q] · nestedAbsmax + offset.
 *   int8 (LLM.int8's weights, no outliers): per row, q = round-half-even(x · f32(127 / absmax));
 *     value: q · absmax · f32(1/127).
 */
import {
  BLOCK_SIZE_4BIT,
  DYNAMIC_TABLE,
  INT8_POST_SCALE,
  NESTED_BLOCK_SIZE,
  codeBits,
  codeTable,
  type QuantType,
} from './formats.ts';

/** The absmax values of a 4-bit weight quantized once more (bnb's nested quant state). */
export interface NestedAbsmax {
  /** One byte per block of the weight: a code of `table`. */
  codes: Uint8Array;
  /** One float per `blockSize` absmax codes. */
  absmax: Float32Array;
  offset: number;
  blockSize: number;
  /** bnb's `nested_quant_map` (the dynamic map). */
  table: Float32Array;
}

/** What reading nested absmax values needs (a NestedAbsmax, or a kernel's buffers). */
export type NestedLayout = Omit<NestedAbsmax, 'absmax' | 'table'> & {
  absmax: ArrayLike<number>;
  table: ArrayLike<number>;
};

/** A quantized [rows, cols] matrix in bitsandbytes' layout, on the host. */
export interface QuantizedData {
  type: QuantType;
  shape: [rows: number, cols: number];
  /** Packed codes: 4-bit two per byte (first element high nibble), int8 one per byte. */
  codes: Uint8Array;
  /** Elements per absmax block over the flat tensor: 64 for 4-bit, cols for int8 (per row). */
  blockSize: number;
  /** One per block; null when the absmax values are themselves quantized (`nested`). */
  absmax: Float32Array | null;
  nested: NestedAbsmax | null;
  /** bnb's `quant_map`: what a code means. */
  table: Float32Array;
}

export interface QuantizeOptions {
  /** bnb_4bit_use_double_quant: quantize the 4-bit absmax values too (ignored for int8). */
  doubleQuant?: boolean;
}

/** f32 nearest-code boundaries of an ascending table: midpoints computed in float32. */
function midpoints(sorted: ArrayLike<number>): Float32Array {
  return Float32Array.from({ length: sorted.length - 1 }, (_, i) =>
    Math.fround(Math.fround(sorted[i]! + sorted[i + 1]!) / 2),
  );
}

/** Index of the nearest entry of an ascending table (bounds = its midpoints; ties go lower). */
function nearest(bounds: Float32Array, x: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (bounds[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const NF4_BOUNDS = midpoints(codeTable('nf4'));
const DYNAMIC_BOUNDS = midpoints(DYNAMIC_TABLE);
/** FP4 magnitudes ascending, with the code of each (its low three bits). */
const FP4_BY_MAGNITUDE = [0, 1, 6, 7, 4, 5, 2, 3];
/** The exact midpoints between FP4 magnitudes (k/12 values), rounded once to float32. */
const FP4_BOUNDS = Float32Array.from({ length: 7 }, (_, i) => {
  const magnitude = (code: number) => Math.abs(codeTable('fp4')[code]!) * 12;
  return Math.fround((magnitude(FP4_BY_MAGNITUDE[i]!) + magnitude(FP4_BY_MAGNITUDE[i + 1]!)) / 24);
});

/** Smallest absmax a block divides by (bnb clamps to 1e-38 in float32). */
const ABSMAX_FLOOR = Math.fround(1e-38);

/**
 * How scaled values become codes: the nearest of a sorted table (its midpoints `bounds`), then
 * `codes[index]`; with `signBit` (FP4), the magnitude's code and bit 3 for s < 0 (CUDA's rule).
 */
export interface Coder {
  bounds: Float32Array;
  codes: Uint8Array;
  signBit: boolean;
}

const identity = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);
export const CODERS = {
  nf4: { bounds: NF4_BOUNDS, codes: identity(16), signBit: false },
  fp4: { bounds: FP4_BOUNDS, codes: Uint8Array.from(FP4_BY_MAGNITUDE), signBit: true },
  dynamic: { bounds: DYNAMIC_BOUNDS, codes: identity(256), signBit: false },
} satisfies Record<string, Coder>;

/** Where quantizeBlocks reads its values and writes codes (packed bytes) and absmax. */
export interface BlockQuantization {
  /** Flat float32 values (f32, or widened bf16 / f16). */
  values: ArrayLike<number>;
  n: number;
  blockSize: number;
  bits: 4 | 8;
  /** A table format's coder; null: int8 (round-half-even of x · f32(127 / absmax)). */
  coder: Coder | null;
  /** Subtracted from every value first, in float32 (double quantization's mean; else 0). */
  offset: number;
  codes: { [i: number]: number };
  absmax: { [i: number]: number };
}

/**
 * Blocks [startBlock, endBlock) of `q.values`: absmax[b] = max |v| of the block (v = f32(x −
 * offset)), and each element's code, written as whole bytes (4-bit: two per byte, the first in
 * the high nibble, a missing last element as a zero code; so with an even block size each block
 * owns its bytes). Table formats: s = clamp(v · f32(1 / max(absmax, 1e-38)), -1, 1), nearest
 * entry (ties lower). int8: an all-zero block keeps zero codes.
 */
export function quantizeBlocks(q: BlockQuantization, startBlock: number, endBlock: number): void {
  const { values, n, blockSize, bits, coder, offset, codes, absmax } = q;
  for (let b = startBlock; b < endBlock; b++) {
    const first = b * blockSize;
    const end = Math.min(n, first + blockSize);
    const value = (i: number) => Math.fround(values[i]! - offset);
    let max = 0;
    for (let i = first; i < end; i++) max = Math.max(max, Math.abs(value(i)));
    absmax[b] = max;
    let code: (i: number) => number;
    if (!coder) {
      const scale = max === 0 ? 0 : Math.fround(127 / max);
      code = (i) => roundHalfEven(Math.fround(value(i) * scale)) & 0xff;
    } else {
      const { bounds, codes: byIndex, signBit } = coder;
      const inverse = Math.fround(1 / Math.max(Math.fround(max), ABSMAX_FLOOR));
      code = (i) => {
        const s = Math.min(1, Math.max(-1, Math.fround(value(i) * inverse)));
        if (!signBit) return byIndex[nearest(bounds, s)]!;
        return (s < 0 ? 8 : 0) | byIndex[nearest(bounds, Math.abs(s))]!;
      };
    }
    if (bits === 8) for (let i = first; i < end; i++) codes[i] = code(i);
    else
      for (let i = first; i < end; i += 2)
        codes[i >> 1] = (code(i) << 4) | (i + 1 < end ? code(i + 1) : 0);
  }
}

/** Per-block absmax and codes of a whole flat tensor (a fresh buffer of packed bytes). */
function blockwise(
  values: ArrayLike<number>,
  blockSize: number,
  bits: 4 | 8,
  coder: Coder | null,
  offset = 0,
): { codes: Uint8Array; absmax: Float32Array } {
  const n = values.length;
  const blocks = Math.ceil(n / blockSize);
  const absmax = new Float32Array(blocks);
  const codes = new Uint8Array(bits === 4 ? Math.ceil(n / 2) : n);
  quantizeBlocks({ values, n, blockSize, bits, coder, offset, codes, absmax }, 0, blocks);
  return { codes, absmax };
}

/** The double-quantization offset of 4-bit absmax values: their mean, rounded to float32. */
export function nestedOffset(absmax: ArrayLike<number>): number {
  // torch's float32 mean may differ from this float64 one in the last bit; a loaded checkpoint
  // carries its own offset, so this only decides how a model quantized here is stored.
  let sum = 0;
  for (let i = 0; i < absmax.length; i++) sum += absmax[i]!;
  return Math.fround(sum / absmax.length);
}

/** bnb's double quantization of 4-bit absmax values (mean offset, dynamic map, blocks of 256). */
function nestAbsmax(absmax: Float32Array): NestedAbsmax {
  const offset = nestedOffset(absmax);
  const inner = blockwise(absmax, NESTED_BLOCK_SIZE, 8, CODERS.dynamic, offset);
  return {
    codes: inner.codes,
    absmax: inner.absmax,
    offset,
    blockSize: NESTED_BLOCK_SIZE,
    table: DYNAMIC_TABLE,
  };
}

/** Round half to even (torch.round). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Quantizes a row-major [rows, cols] matrix of float32 values (f32, or widened bf16 / f16). */
export function quantize(
  values: ArrayLike<number>,
  shape: [number, number],
  type: QuantType,
  options: QuantizeOptions = {},
): QuantizedData {
  const [rows, cols] = shape;
  if (values.length !== rows * cols)
    throw new Error(`quantize: ${values.length} values for [${shape}]`);
  if (type === 'int8') {
    const { codes, absmax } = blockwise(values, cols, 8, null);
    return { type, shape, codes, blockSize: cols, absmax, nested: null, table: codeTable(type) };
  }
  const { codes, absmax } = blockwise(values, BLOCK_SIZE_4BIT, 4, CODERS[type]);
  const nested = options.doubleQuant ? nestAbsmax(absmax) : null;
  return {
    type,
    shape,
    codes,
    blockSize: BLOCK_SIZE_4BIT,
    absmax: nested ? null : absmax,
    nested,
    table: codeTable(type),
  };
}

/** The absmax of block `b`: stored, or recovered from its nested quantization. */
export function blockScale(
  absmax: ArrayLike<number> | null,
  nested: NestedLayout | null,
  b: number,
): number {
  if (!nested) return absmax![b]!;
  const code = nested.codes[b]!;
  const scale = nested.absmax[Math.floor(b / nested.blockSize)]!;
  return Math.fround(Math.fround(nested.table[code]! * scale) + nested.offset);
}

/** The code of flat element i of packed codes (4-bit: high nibble first). */
export function elementCode(codes: Uint8Array, bits: 4 | 8, i: number): number {
  if (bits === 8) return codes[i]!;
  const byte = codes[i >> 1]!;
  return i & 1 ? byte & 15 : byte >> 4;
}

/** What dequantization reads: a QuantizedData, or a kernel's buffers and params. */
export interface QuantLayout {
  codes: Uint8Array;
  bits: 4 | 8;
  blockSize: number;
  absmax: ArrayLike<number> | null;
  nested: NestedLayout | null;
  table: ArrayLike<number>;
  /** 1, or f32(1/127) for int8. */
  postScale: number;
}

export function layoutOf(q: QuantizedData): QuantLayout {
  const { codes, blockSize, absmax, nested, table } = q;
  const postScale = q.type === 'int8' ? INT8_POST_SCALE : 1;
  return { codes, bits: codeBits(q.type), blockSize, absmax, nested, table, postScale };
}

/**
 * Flat elements [start, start + count) of a quantized matrix as float32 values into `out` from
 * `outOffset`: f32(f32(table[code] · absmax) · postScale).
 */
export function dequantizeRange(
  q: QuantLayout,
  start: number,
  count: number,
  out: { [i: number]: number },
  outOffset = 0,
): void {
  let block = -1;
  let scale = 0;
  for (let i = start; i < start + count; i++) {
    const b = Math.floor(i / q.blockSize);
    if (b !== block) [block, scale] = [b, blockScale(q.absmax, q.nested, b)];
    const value = Math.fround(q.table[elementCode(q.codes, q.bits, i)]! * scale);
    out[outOffset + i - start] = Math.fround(value * q.postScale);
  }
}

/** The whole matrix dequantized (tests, merging). */
export function dequantize(q: QuantizedData): Float32Array {
  const [rows, cols] = q.shape;
  const out = new Float32Array(rows * cols);
  dequantizeRange(layoutOf(q), 0, rows * cols, out);
  return out;
}

/** Bytes as little-endian i32 words (zero-padded to a whole word): how devices store codes. */
export function bytesToWords(bytes: Uint8Array): Int32Array {
  const words = new Int32Array(Math.max(1, Math.ceil(bytes.length / 4)));
  new Uint8Array(words.buffer).set(bytes);
  return words;
}
