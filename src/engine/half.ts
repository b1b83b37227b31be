/**
 * bf16 / f16 <-> f32 conversions (round to nearest even, as PyTorch's `.to()`), scalar and over
 * arrays: the one implementation the CPU kernels, the safetensors reader/writer and the tests use.
 */
import type { DType } from './dtype.ts';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32Scalar(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

export function f32ToBf16Scalar(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40; // NaN stays a (quiet) NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToF32Scalar(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function f32ToF16Scalar(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

function mapHalf<T extends Float32Array | Uint16Array>(
  src: ArrayLike<number>,
  out: T,
  convert: (value: number) => number,
): T {
  for (let i = 0; i < src.length; i++) out[i] = convert(src[i]!);
  return out;
}

export function bf16ToF32(src: Uint16Array): Float32Array {
  return mapHalf(src, new Float32Array(src.length), bf16ToF32Scalar);
}

export function f32ToBf16(src: Float32Array): Uint16Array {
  return mapHalf(src, new Uint16Array(src.length), f32ToBf16Scalar);
}

export function f16ToF32(src: Uint16Array): Float32Array {
  return mapHalf(src, new Float32Array(src.length), f16ToF32Scalar);
}

export function f32ToF16(src: Float32Array): Uint16Array {
  return mapHalf(src, new Uint16Array(src.length), f32ToF16Scalar);
}

/** Bits of a half dtype to the f32 value (f32 passes through). */
export function widenScalar(dtype: DType): (bits: number) => number {
  if (dtype === 'bf16') return bf16ToF32Scalar;
  if (dtype === 'f16') return f16ToF32Scalar;
  return (value) => value;
}

/** An f32 value to the bits of a half dtype, rounded to nearest even (f32 passes through). */
export function narrowScalar(dtype: DType): (value: number) => number {
  if (dtype === 'bf16') return f32ToBf16Scalar;
  if (dtype === 'f16') return f32ToF16Scalar;
  return (value) => value;
}
