/**
 * Kernels that move little data per flop or run once per step, written in plain TypeScript over
 * views of the shared wasm memory. The heavy ones (GEMM, attention, norms, activations) are wasm.
 */
import { bf16ToF32Scalar, f16ToF32Scalar, f32ToBf16Scalar, f32ToF16Scalar } from '../half.ts';

export type HalfDType = 'bf16' | 'f16';

export function widen(dtype: HalfDType): (bits: number) => number {
  return dtype === 'bf16' ? bf16ToF32Scalar : f16ToF32Scalar;
}

export function narrow(dtype: HalfDType): (value: number) => number {
  return dtype === 'bf16' ? f32ToBf16Scalar : f32ToF16Scalar;
}

/** Copies row `ids[i]` of a [vocab, dim] table into out row i, widening half types. */
export function embeddingForward(
  table: Float32Array | Uint16Array,
  tableDType: 'f32' | HalfDType,
  ids: Int32Array,
  out: Float32Array,
  dim: number,
): void {
  for (let i = 0; i < ids.length; i++) {
    const src = ids[i]! * dim;
    const dst = i * dim;
    if (tableDType === 'f32') {
      out.set((table as Float32Array).subarray(src, src + dim), dst);
    } else {
      const toF32 = widen(tableDType);
      for (let d = 0; d < dim; d++) out[dst + d] = toF32(table[src + d]!);
    }
  }
}

export function scatterAddRows(
  src: Float32Array,
  idx: Int32Array,
  dst: Float32Array,
  cols: number,
): void {
  for (let i = 0; i < idx.length; i++) {
    const s = i * cols;
    const d = idx[i]! * cols;
    for (let c = 0; c < cols; c++) dst[d + c]! += src[s + c]!;
  }
}

export function ceOnlineFinish(
  acc: Float32Array,
  runSum: Float32Array,
  targetRows: Float32Array,
  rows: number,
  cols: number,
  scale: number,
): void {
  for (let r = 0; r < rows; r++) {
    const inv = 1 / runSum[r]!;
    for (let c = r * cols; c < (r + 1) * cols; c++)
      acc[c] = scale * (acc[c]! * inv - targetRows[c]!);
  }
}

export function scaleColumns(
  x: Float32Array,
  scale: Float32Array,
  out: Float32Array,
  rows: number,
  cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[o + c] = x[o + c]! * scale[c]!;
  }
}

export function columnDots(
  a: Float32Array,
  b: Float32Array,
  out: Float32Array,
  rows: number,
  cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c]! += a[o + c]! * b[o + c]!;
  }
}

export function sumRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) out[c]! += x[o + c]!;
  }
}
