// Quantized frozen weights (src/engine/kernels/quant.ts): rows of a bitsandbytes NF4 / FP4 / int8
// matrix dequantized into an f32 tile, or multiplied by a few rows of x straight from the codes.
// Weights are computed with separate f32 multiplies and adds in bnb's order (no fused madd), so
// they are the reference's values bit for bit.
import { at, hsum } from './lib/simd';

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

/** Byte `b` of each of the 16 f32 entries of a 4-bit code table, as one vector (for swizzles). */
@inline function tablePlane(t0: v128, t1: v128, t2: v128, t3: v128, b: u8): v128 {
  // Lanes b, b+4, b+8, b+12 of each quarter; the shuffle lanes must be constants, so per plane.
  if (b == 0) {
    return i8x16.shuffle(
      i8x16.shuffle(t0, t1, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0),
      i8x16.shuffle(t2, t3, 0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0),
      0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  }
  if (b == 1) {
    return i8x16.shuffle(
      i8x16.shuffle(t0, t1, 1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0),
      i8x16.shuffle(t2, t3, 1, 5, 9, 13, 17, 21, 25, 29, 0, 0, 0, 0, 0, 0, 0, 0),
      0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  }
  if (b == 2) {
    return i8x16.shuffle(
      i8x16.shuffle(t0, t1, 2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0),
      i8x16.shuffle(t2, t3, 2, 6, 10, 14, 18, 22, 26, 30, 0, 0, 0, 0, 0, 0, 0, 0),
      0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  }
  return i8x16.shuffle(
    i8x16.shuffle(t0, t1, 3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0),
    i8x16.shuffle(t2, t3, 3, 7, 11, 15, 19, 23, 27, 31, 0, 0, 0, 0, 0, 0, 0, 0),
    0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
}

/**
 * Σ x[k] · W[k] over 16·groups 4-bit codes starting at byte `codeBytes` (first element in a high
 * nibble) inside one absmax block: the codes become table values by byte-plane swizzles.
 */
@inline function dot4bit(
  x: usize, codeBytes: usize, groups: i32, scale: f32,
  p0: v128, p1: v128, p2: v128, p3: v128, acc: v128,
): v128 {
  const s = f32x4.splat(scale);
  const low = i8x16.splat(15);
  for (let g = 0; g < groups; g++) {
    const packed = v128.load64_zero(codeBytes + (<usize>g << 3));
    const codes = i8x16.shuffle(
      i8x16.shr_u(packed, 4), v128.and(packed, low),
      0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const b0 = i8x16.swizzle(p0, codes);
    const b1 = i8x16.swizzle(p1, codes);
    const b2 = i8x16.swizzle(p2, codes);
    const b3 = i8x16.swizzle(p3, codes);
    const lo01 = i8x16.shuffle(b0, b1, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const hi01 = i8x16.shuffle(b0, b1, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const lo23 = i8x16.shuffle(b2, b3, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const hi23 = i8x16.shuffle(b2, b3, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const xs = x + (<usize>g << 6);
    const w0 = i8x16.shuffle(lo01, lo23, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const w1 = i8x16.shuffle(lo01, lo23, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    const w2 = i8x16.shuffle(hi01, hi23, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    const w3 = i8x16.shuffle(hi01, hi23, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    acc = f32x4.add(acc, f32x4.mul(v128.load(xs), f32x4.mul(w0, s)));
    acc = f32x4.add(acc, f32x4.mul(v128.load(xs + 16), f32x4.mul(w1, s)));
    acc = f32x4.add(acc, f32x4.mul(v128.load(xs + 32), f32x4.mul(w2, s)));
    acc = f32x4.add(acc, f32x4.mul(v128.load(xs + 48), f32x4.mul(w3, s)));
  }
  return acc;
}

/**
 * y rows [0, rows) columns [start, end) = x · rows firstRow + start … of the quantized [·, cols]
 * W (+ bias): each weight is the value dequantizeRows gives. 4-bit rows that start on a byte and
 * whose blocks hold whole groups of 16 go through dot4bit; the rest one code at a time.
 */
export function quantizedMatmul(
  x: usize, codes: usize, absmax: usize, nestedAbsmax: usize, table: usize, nestedTable: usize,
  bias: usize, y: usize,
  rows: u32, cols: u32, firstRow: u32, count: u32, ldy: u32, bits: u32, blockSize: u32,
  nested: i32, nestedBlockSize: u32, nestedOffset: f32, postScale: f32,
  start: i32, end: i32,
): void {
  const vectors = bits == 4 && cols % 16 == 0 && blockSize % 16 == 0;
  // Every table holds at least 16 entries (4-bit: exactly 16).
  const t0 = v128.load(table);
  const t1 = v128.load(table + 16);
  const t2 = v128.load(table + 32);
  const t3 = v128.load(table + 48);
  const p0 = tablePlane(t0, t1, t2, t3, 0);
  const p1 = tablePlane(t0, t1, t2, t3, 1);
  const p2 = tablePlane(t0, t1, t2, t3, 2);
  const p3 = tablePlane(t0, t1, t2, t3, 3);
  for (let n = <u32>start; n < <u32>end; n++) {
    const rowStart = (firstRow + n) * cols;
    const rowEnd = rowStart + cols;
    for (let m: u32 = 0; m < rows; m++) {
      const xRow = x + ((<usize>m * <usize>cols) << 2);
      let acc = f32x4.splat(0);
      let sum: f32 = 0;
      for (let i = rowStart; i < rowEnd; ) {
        const block = i / blockSize;
        const stretchEnd = min(rowEnd, (block + 1) * blockSize);
        const scale = blockScale(
          absmax, nestedAbsmax, nestedTable, nested, nestedBlockSize, nestedOffset, block,
        );
        if (vectors && ((i - rowStart) & 15) == 0 && ((stretchEnd - i) & 15) == 0) {
          const xs = xRow + (<usize>(i - rowStart) << 2);
          acc = dot4bit(xs, codes + <usize>(i >> 1), <i32>((stretchEnd - i) >> 4), scale, p0, p1, p2, p3, acc);
          i = stretchEnd;
          continue;
        }
        for (; i < stretchEnd; i++) {
          const value = load<f32>(at(table, codeAt(codes, bits, i))) * scale;
          sum += load<f32>(xRow + (<usize>(i - rowStart) << 2)) * (value * postScale);
        }
      }
      sum += hsum(acc);
      if (bias) sum += load<f32>(at(bias, <i32>n));
      store<f32>(y + ((<usize>m * <usize>ldy + <usize>n) << 2), sum);
    }
  }
}

/** f32(x_i − offset), the source f32 (source 0) or bf16 (source 1, widened exactly). */
@inline function sourceValue(x: usize, source: i32, i: u32, offset: f32): f32 {
  const value = source == 1
    ? reinterpret<f32>(<u32>load<u16>(x + (<usize>i << 1)) << 16)
    : load<f32>(x + (<usize>i << 2));
  return value - offset;
}

@inline function clampUnit(s: f32): f32 {
  return min(<f32>1, max(<f32>-1, s));
}

/** The code of a scaled, clamped value s: the count of table midpoints below it (mode 1: |s|). */
@inline function tableCode(bounds: usize, codeOf: usize, boundCount: i32, mode: i32, s: f32): i32 {
  const magnitude = mode == 1 ? abs(s) : s;
  let below = 0;
  for (let k = 0; k < boundCount; k++) below += <i32>(load<f32>(at(bounds, k)) < magnitude);
  const code = load<i32>(at(codeOf, below));
  return mode == 1 && s < 0 ? code | 8 : code;
}

/**
 * Blocks [start, end) of the flat tensor x quantized (the quantizeRows spec): absmax per block,
 * then each code (mode 0 nearest table entry, 1 FP4's signed magnitude, 2 int8 rounding), 4-bit
 * codes packed two per byte, the first in the high nibble.
 */
export function quantizeRows(
  x: usize, bounds: usize, codeOf: usize, codes: usize, absmax: usize,
  n: u32, blockSize: u32, bits: u32, mode: i32, offset: f32, source: i32,
  start: i32, end: i32,
): void {
  const boundCount = mode == 1 ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  for (let b = <u32>start; b < <u32>end; b++) {
    const first = b * blockSize;
    const last = min(n, first + blockSize);
    let largest: f32 = 0;
    for (let i = first; i < last; i++)
      largest = max(largest, abs(sourceValue(x, source, i, offset)));
    store<f32>(at(absmax, <i32>b), largest);
    if (mode == 2) {
      const scale: f32 = largest == 0 ? 0 : <f32>127 / largest;
      for (let i = first; i < last; i++) {
        const q = <i32>nearest(sourceValue(x, source, i, offset) * scale);
        store<u8>(codes + <usize>i, <u8>q);
      }
      continue;
    }
    // bnb never divides by a zero absmax: an all-zero block scales by 1 / 1e-38.
    const inverse = <f32>1 / max(largest, <f32>1e-38);
    for (let i = first; i < last; ) {
      const s = clampUnit(sourceValue(x, source, i, offset) * inverse);
      const code = tableCode(bounds, codeOf, boundCount, mode, s);
      if (bits == 8) {
        store<u8>(codes + <usize>i, <u8>code);
        i++;
        continue;
      }
      let low = 0;
      if (i + 1 < last) {
        const t = clampUnit(sourceValue(x, source, i + 1, offset) * inverse);
        low = tableCode(bounds, codeOf, boundCount, mode, t);
      }
      store<u8>(codes + <usize>(i >> 1), <u8>(code << 4 | low));
      i += 2;
    }
  }
}
