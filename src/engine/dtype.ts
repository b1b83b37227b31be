/** Element types a tensor can hold. bf16/f16 are storage types for frozen weights only. */
export type DType = 'f32' | 'bf16' | 'f16' | 'i32';

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4 };

export function isHalf(dtype: DType): dtype is 'bf16' | 'f16' {
  return dtype === 'bf16' || dtype === 'f16';
}
