/**
 * Row movement: the embedding lookup and its gradient, gather / scatter of rows by i32 index,
 * and the column reductions and scales (bias gradients, DoRA's magnitude).
 */
import { widenScalar } from '../half.ts';
import { defineKernel } from './spec.ts';

/** out [count, dim] f32 = rows ids[i] of table [vocab, dim] (f32, bf16 or f16, widened). */
export const embeddingForward = defineKernel({
  name: 'embeddingForward',
  buffers: {
    table: { dtype: 'float', access: 'read' },
    ids: { dtype: 'i32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
  },
  params: { count: 'u32', dim: 'u32' },
  reference({ table, ids, out }, { count, dim }, dtypes) {
    const toF32 = widenScalar(dtypes.table);
    for (let i = 0; i < count; i++)
      for (let d = 0; d < dim; d++) out[i * dim + d] = toF32(table[ids[i]! * dim + d]!);
  },
});

/** dTable[ids[i]] += dout[i] (repeated ids add up, in order). */
export const embeddingBackward = defineKernel({
  name: 'embeddingBackward',
  buffers: {
    dout: { dtype: 'f32', access: 'read' },
    ids: { dtype: 'i32', access: 'read' },
    dTable: { dtype: 'f32', access: 'read_write' },
  },
  params: { count: 'u32', dim: 'u32' },
  reference({ dout, ids, dTable }, { count, dim }) {
    scatter(dout, ids, dTable, count, dim, true);
  },
});

/** dst row i = src row idx[i] (any dtype, the same in both). */
export const gatherRows = defineKernel({
  name: 'gatherRows',
  buffers: {
    src: { dtype: 'any', access: 'read' },
    idx: { dtype: 'i32', access: 'read' },
    dst: { dtype: 'any', access: 'write' },
  },
  params: { rows: 'u32', cols: 'u32' },
  reference({ src, idx, dst }, { rows, cols }) {
    for (let i = 0; i < rows; i++)
      for (let c = 0; c < cols; c++) dst[i * cols + c] = src[idx[i]! * cols + c]!;
  },
});

function scatter(
  src: ArrayLike<number>,
  idx: Int32Array,
  dst: { [i: number]: number },
  rows: number,
  cols: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < cols; c++) {
      const d = idx[i]! * cols + c;
      dst[d] = (accumulate ? dst[d]! : 0) + src[i * cols + c]!;
    }
  }
}

/** dst row idx[i] = src row i (f32; with repeated indices the last one wins). */
export const scatterRows = defineKernel({
  name: 'scatterRows',
  buffers: {
    src: { dtype: 'f32', access: 'read' },
    idx: { dtype: 'i32', access: 'read' },
    dst: { dtype: 'f32', access: 'write' },
  },
  params: { rows: 'u32', cols: 'u32' },
  reference({ src, idx, dst }, { rows, cols }) {
    scatter(src, idx, dst, rows, cols, false);
  },
});

/** dst row idx[i] += src row i (f32, repeated indices add up in order). */
export const scatterAddRows = defineKernel({
  name: 'scatterAddRows',
  buffers: {
    src: { dtype: 'f32', access: 'read' },
    idx: { dtype: 'i32', access: 'read' },
    dst: { dtype: 'f32', access: 'read_write' },
  },
  params: { rows: 'u32', cols: 'u32' },
  reference({ src, idx, dst }, { rows, cols }) {
    scatter(src, idx, dst, rows, cols, true);
  },
});

/** out [cols] += Σ_r x[r, c] (bias gradients). */
export const sumRows = defineKernel({
  name: 'sumRows',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'read_write' },
  },
  params: { rows: 'u32', cols: 'u32' },
  reference({ x, out }, { rows, cols }) {
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) out[c] = out[c]! + x[r * cols + c]!;
  },
});

/** out[r, c] = x[r, c] · scale[c] (DoRA's per-output scale; out may be x). */
export const scaleColumns = defineKernel({
  name: 'scaleColumns',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    scale: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
  },
  params: { rows: 'u32', cols: 'u32' },
  reference({ x, scale, out }, { rows, cols }) {
    for (let i = 0; i < rows * cols; i++) out[i] = x[i]! * scale[i % cols]!;
  },
});

/** out[c] += Σ_r a[r, c] · b[r, c] (DoRA's magnitude gradient). */
export const columnDots = defineKernel({
  name: 'columnDots',
  buffers: {
    a: { dtype: 'f32', access: 'read' },
    b: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'read_write' },
  },
  params: { rows: 'u32', cols: 'u32' },
  reference({ a, b, out }, { rows, cols }) {
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) out[c] = out[c]! + a[r * cols + c]! * b[r * cols + c]!;
  },
});

export const ROWS = {
  embeddingForward,
  embeddingBackward,
  gatherRows,
  scatterRows,
  scatterAddRows,
  sumRows,
  scaleColumns,
  columnDots,
} as const;
