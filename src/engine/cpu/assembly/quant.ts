// Dequantization of quantized frozen weights (src/engine/kernels/quant.ts): rows of a bitsandbytes
// NF4 / FP4 / int8 matrix into an f32 tile. Separate f32 multiplies and adds in bnb's order (no
// fused madd), so the values match the reference bit for bit.
import { at } from './lib/simd';

/** The absmax of block `block`: stored, or recovered from its nested 8-bit code. */
@inline function blockScale(
  absmax: usize, nestedAbsmax: usize, nestedTable: usize,
  nested: i32, nestedBlockSize: u32, nestedOffset: f32, block: u32,
): f32 {
  if (!nested) return load<f32>(at(absmax, <i32>block));
  const code = <i32>load<u8>(absmax + <usize>block);
  const outer = load<f32>(at(nestedAbsmax, <i32>(block / nestedBlockSize)));
  return load<f32>(at(nestedTable, code)) * outer + nestedOffset;
}

/** The code of flat element i: 4-bit codes two per byte (first element high nibble), or bytes. */
@inline function codeAt(codes: usize, bits: u32, i: u32): i32 {
  if (bits == 8) return <i32>load<u8>(codes + <usize>i);
  const byte = <i32>load<u8>(codes + <usize>(i >> 1));
  return i & 1 ? byte & 15 : byte >> 4;
}

/** out rows [start, end) of the tile = rows firstRow + start … of the quantized [·, cols] matrix. */
export function dequantizeRows(
  codes: usize, absmax: usize, nestedAbsmax: usize, table: usize, nestedTable: usize, out: usize,
  firstRow: u32, rows: u32, cols: u32, bits: u32, blockSize: u32,
  nested: i32, nestedBlockSize: u32, nestedOffset: f32, postScale: f32,
  start: i32, end: i32,
): void {
  for (let r = <u32>start; r < <u32>end; r++) {
    const rowStart = (firstRow + r) * cols;
    const rowEnd = rowStart + cols;
    const dst = out + ((<usize>r * <usize>cols) << 2);
    // One absmax per stretch of the row inside a block.
    for (let i = rowStart; i < rowEnd; ) {
      const block = i / blockSize;
      const stretchEnd = min(rowEnd, (block + 1) * blockSize);
      const scale = blockScale(
        absmax, nestedAbsmax, nestedTable, nested, nestedBlockSize, nestedOffset, block,
      );
      for (; i < stretchEnd; i++) {
        const value = load<f32>(at(table, codeAt(codes, bits, i))) * scale;
        store<f32>(dst + (<usize>(i - rowStart) << 2), value * postScale);
      }
    }
  }
}
