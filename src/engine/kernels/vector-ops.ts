/**
 * Flat kernels over n elements: residual add, axpby, fill, dropout, a device-scalar scale and
 * dtype conversion.
 */
import { dropoutHash, dropoutKeepScale, dropoutThreshold } from '../dropout.ts';
import { narrowScalar, widenScalar } from '../half.ts';
import { defineKernel } from './spec.ts';

/** out = a + b (out may be a or b). */
export const add = defineKernel({
  name: 'add',
  buffers: {
    a: { dtype: 'f32', access: 'read' },
    b: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
  },
  params: { n: 'u32' },
  reference({ a, b, out }, { n }) {
    for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
  },
});

/** y = alpha·x + beta·y; beta 0 overwrites y without reading it (it may hold NaN). */
export const axpby = defineKernel({
  name: 'axpby',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    y: { dtype: 'f32', access: 'read_write' },
  },
  params: { n: 'u32', alpha: 'f32', beta: 'f32' },
  reference({ x, y }, { n, alpha, beta }) {
    for (let i = 0; i < n; i++) y[i] = alpha * x[i]! + (beta === 0 ? 0 : beta * y[i]!);
  },
});

/** x[i] = value over n f32 or i32 elements. */
export const fill = defineKernel({
  name: 'fill',
  buffers: { x: { dtype: 'word', access: 'write' } },
  params: { n: 'u32', value: 'f32' },
  reference({ x }, { n, value }) {
    x.fill(value, 0, n);
  },
});

/**
 * LoRA dropout: out = x / (1 − p), or 0 where the mask drawn from `seed` drops the element
 * (engine/dropout.ts); out may be x. The same seed redraws the same mask.
 */
export const dropout = defineKernel({
  name: 'dropout',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
  },
  params: { n: 'u32', p: 'f32', seed: 'u32' },
  reference({ x, out }, { n, p, seed }) {
    const threshold = dropoutThreshold(p);
    const keep = dropoutKeepScale(p);
    for (let i = 0; i < n; i++) out[i] = dropoutHash(seed, i) < threshold ? 0 : x[i]! * keep;
  },
});

/**
 * x *= factor[0] / divisor: applies a device-resident scalar (the backward seed of the fused
 * loss) without a host read.
 */
export const scaleByScalar = defineKernel({
  name: 'scaleByScalar',
  buffers: {
    x: { dtype: 'f32', access: 'read_write' },
    factor: { dtype: 'f32', access: 'read' },
  },
  params: { n: 'u32', divisor: 'f32' },
  reference({ x, factor }, { n, divisor }) {
    const scale = factor[0]! / divisor;
    for (let i = 0; i < n; i++) x[i] = x[i]! * scale;
  },
});

/** dst = src widened or narrowed between float dtypes (round to nearest even; same dtype: a copy). */
export const convert = defineKernel({
  name: 'convert',
  buffers: {
    src: { dtype: 'float', access: 'read' },
    dst: { dtype: 'float', access: 'write' },
  },
  params: { n: 'u32' },
  reference({ src, dst }, { n }, dtypes) {
    const toF32 = widenScalar(dtypes.src);
    const fromF32 = narrowScalar(dtypes.dst);
    for (let i = 0; i < n; i++) dst[i] = fromF32(toF32(src[i]!));
  },
});

export const VECTOR_OPS = { add, axpby, fill, dropout, scaleByScalar, convert } as const;
