/**
 * Quantized frozen weights (engine/quant: bitsandbytes' NF4, FP4 and int8): quantization of a
 * weight as it is loaded, and dequantization a block of rows at a time into an f32 scratch tile,
 * which the quantized linear op then multiplies: no whole dequantized weight ever exists.
 */
import { widenScalar } from '../half.ts';
import { dequantizeRange, quantizeBlocks, type QuantLayout } from '../quant/quantize.ts';
import { defineKernel } from './spec.ts';

/** Host bytes of a buffer of packed codes (stored as i32 words, little-endian). */
function bytesOf(words: Int32Array | Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
}

type Words = Int32Array | Float32Array | Float64Array;
type Floats = Float32Array | Float64Array;

/** The QuantLayout a quantized kernel's buffers and params describe. */
function layoutOf(
  b: {
    codes: Words;
    absmax: Words;
    nestedAbsmax: Floats | null;
    table: Floats;
    nestedTable: Floats | null;
  },
  p: {
    bits: number;
    blockSize: number;
    nested: boolean;
    nestedBlockSize: number;
    nestedOffset: number;
    postScale: number;
  },
): QuantLayout {
  const nested = p.nested
    ? {
        codes: bytesOf(b.absmax),
        absmax: b.nestedAbsmax!,
        offset: p.nestedOffset,
        blockSize: p.nestedBlockSize,
        table: b.nestedTable!,
      }
    : null;
  return {
    codes: bytesOf(b.codes),
    bits: p.bits as 4 | 8,
    blockSize: p.blockSize,
    absmax: nested ? null : b.absmax,
    nested,
    table: b.table,
    postScale: p.postScale,
  };
}

/**
 * out [rows, cols] f32 = rows firstRow … firstRow + rows − 1 of a quantized [·, cols] matrix:
 * element i of the flat matrix is f32(f32(table[code_i] · absmax_b) · postScale), b = i / blockSize.
 * `codes`: the packed codes as bytes in i32 words (bits 4: two per byte, the first element in the
 * high nibble; bits 8: one per byte). `absmax`: f32 per block; with `nested`, one code byte per
 * block (in i32 words) of `nestedTable`, recovered as f32(f32(nestedTable[q] · nestedAbsmax[b /
 * nestedBlockSize]) + nestedOffset) (bnb's double quantization). `postScale`: 1, or f32(1/127)
 * for int8.
 */
export const dequantizeRows = defineKernel({
  name: 'dequantizeRows',
  buffers: {
    codes: { dtype: 'i32', access: 'read' },
    absmax: { dtype: 'word', access: 'read' },
    nestedAbsmax: { dtype: 'f32', access: 'read', optional: true },
    table: { dtype: 'f32', access: 'read' },
    nestedTable: { dtype: 'f32', access: 'read', optional: true },
    out: { dtype: 'f32', access: 'write' },
  },
  params: {
    firstRow: 'u32',
    rows: 'u32',
    cols: 'u32',
    bits: 'u32',
    blockSize: 'u32',
    nested: 'bool',
    nestedBlockSize: 'u32',
    nestedOffset: 'f32',
    postScale: 'f32',
  },
  reference({ codes, absmax, nestedAbsmax, table, nestedTable, out }, p) {
    const layout = layoutOf({ codes, absmax, nestedAbsmax, table, nestedTable }, p);
    dequantizeRange(layout, p.firstRow * p.cols, p.rows * p.cols, out);
  },
});

/**
 * y[m, n] = Σ_k x[m, k] · W[firstRow + n, k] (+ bias[n]) for m < rows, n < count (y row stride
 * ldy): x times rows of a quantized W (layout and params as dequantizeRows), read straight from
 * the codes. For a few rows of x (decoding), where dequantizing a tile would cost as much as the
 * product; the weights are the values dequantizeRows gives, the sums accumulate in float32 (the
 * reference in float64).
 */
export const quantizedMatmul = defineKernel({
  name: 'quantizedMatmul',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    codes: { dtype: 'i32', access: 'read' },
    absmax: { dtype: 'word', access: 'read' },
    nestedAbsmax: { dtype: 'f32', access: 'read', optional: true },
    table: { dtype: 'f32', access: 'read' },
    nestedTable: { dtype: 'f32', access: 'read', optional: true },
    bias: { dtype: 'f32', access: 'read', optional: true },
    y: { dtype: 'f32', access: 'write' },
  },
  params: {
    rows: 'u32',
    cols: 'u32',
    firstRow: 'u32',
    count: 'u32',
    ldy: 'u32',
    bits: 'u32',
    blockSize: 'u32',
    nested: 'bool',
    nestedBlockSize: 'u32',
    nestedOffset: 'f32',
    postScale: 'f32',
  },
  reference({ x, codes, absmax, nestedAbsmax, table, nestedTable, bias, y }, p) {
    const w = new Float32Array(p.cols);
    for (let n = 0; n < p.count; n++) {
      dequantizeRange(
        layoutOf({ codes, absmax, nestedAbsmax, table, nestedTable }, p),
        (p.firstRow + n) * p.cols,
        p.cols,
        w,
      );
      for (let m = 0; m < p.rows; m++) {
        let sum = bias ? bias[n]! : 0;
        for (let k = 0; k < p.cols; k++) sum += x[m * p.cols + k]! * w[k]!;
        y[m * p.ldy + n] = sum;
      }
    }
  },
});

/**
 * Blocks [0, ceil(n / blockSize)) of the flat values x (`source`: f32, or bf16 widened) quantized
 * as engine/quant/quantize.ts does, bit for bit: absmax[b] = max |v| over the block, v = f32(x −
 * offset); then per element, `mode` nearest: s = clamp(v · f32(1 / max(absmax, 1e-38)), -1, 1) and
 * the code codeOf[#(bounds < s)] (`bounds`: the f32 midpoints of the ascending table); signed
 * (FP4): codeOf[#(bounds < |s|)] | 8 when s < 0; int8: round-half-even(v · f32(127 / absmax)) as
 * a byte (0 for an all-zero block; `bounds` and `codeOf` unused). `codes`: bytes in i32 words,
 * bits 4 two per byte (first element in the high nibble; blockSize even, so each block owns its
 * bytes), bits 8 one per byte. The work range is in blocks.
 */
export const quantizeRows = defineKernel({
  name: 'quantizeRows',
  buffers: {
    x: { dtype: 'float', access: 'read' },
    bounds: { dtype: 'f32', access: 'read', optional: true },
    codeOf: { dtype: 'i32', access: 'read', optional: true },
    codes: { dtype: 'i32', access: 'write' },
    absmax: { dtype: 'f32', access: 'write' },
  },
  params: {
    n: 'u32',
    blockSize: 'u32',
    bits: 'u32',
    mode: ['nearest', 'signed', 'int8'],
    offset: 'f32',
    source: ['f32', 'bf16'],
  },
  reference({ x, bounds, codeOf, codes, absmax }, p) {
    const widen = widenScalar(p.source);
    const values = Float32Array.from(x.subarray(0, p.n), (bits) => widen(bits));
    const coder =
      p.mode === 'int8'
        ? null
        : {
            bounds: Float32Array.from(bounds!),
            codes: Uint8Array.from(codeOf!),
            signBit: p.mode === 'signed',
          };
    quantizeBlocks(
      {
        values,
        n: p.n,
        blockSize: p.blockSize,
        bits: p.bits as 4 | 8,
        coder,
        offset: p.offset,
        codes: bytesOf(codes),
        absmax,
      },
      0,
      Math.ceil(p.n / p.blockSize),
    );
  },
});

export const QUANT = { dequantizeRows, quantizedMatmul, quantizeRows } as const;
