/** Shared helpers of the block quantizers: f16 scale fields and round-half-away-from-zero. */
import { f16ToF32Scalar, f32ToF16Scalar } from '../../../engine/half.ts';

/** C's roundf / llama.cpp's nearest_int on the values that matter: halves go away from zero. */
export function roundAway(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

/** Stores `value` as an f16 at byte `offset` and returns the value the decoder will see. */
export function putF16(view: DataView, offset: number, value: number): number {
  const bits = f32ToF16Scalar(value);
  view.setUint16(offset, bits, true);
  return f16ToF32Scalar(bits);
}

export function getF16(view: DataView, offset: number): number {
  return f16ToF32Scalar(view.getUint16(offset, true));
}

export function checkBlocks(count: number, blockSize: number, type: string): number {
  if (count % blockSize !== 0) {
    throw new Error(`${type}: ${count} values are not a whole number of ${blockSize}-value blocks`);
  }
  return count / blockSize;
}
