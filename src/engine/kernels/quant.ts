/**
 * Dequantization of quantized frozen weights (engine/quant: bitsandbytes' NF4, FP4 and int8), a
 * block of rows at a time into an f32 scratch tile, which the quantized linear op then multiplies:
 * no whole dequantized weight ever exists.
 */
import { dequantizeRange } from '../quant/quantize.ts';
import { defineKernel } from './spec.ts';

/** Host bytes of a buffer of packed codes (stored as i32 words, little-endian). */
function bytesOf(words: Int32Array | Float32Array | Float64Array): Uint8Array {
  return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
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
    const nested = p.nested
      ? {
          codes: bytesOf(absmax),
          absmax: nestedAbsmax!,
          offset: p.nestedOffset,
          blockSize: p.nestedBlockSize,
          table: nestedTable!,
        }
      : null;
    const layout = {
      codes: bytesOf(codes),
      bits: p.bits as 4 | 8,
      blockSize: p.blockSize,
      absmax: nested ? null : absmax,
      nested,
      table,
      postScale: p.postScale,
    };
    dequantizeRange(layout, p.firstRow * p.cols, p.rows * p.cols, out);
  },
});

export const QUANT = { dequantizeRows } as const;
