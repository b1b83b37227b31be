/**
 * Small flat kernels the engine's Backend interface needs besides the heavy ones: add, dropout,
 * axpby, fill, scaling by a device scalar and dtype conversion (same semantics as the CPU
 * backend, src/engine/cpu/backend.ts).
 */
import type { KernelDef, StorageDtype } from './kernel-def.ts';
import { specBindings, wgslLoader } from './kernel-def.ts';
import {
  ELEMENTWISE_WORKGROUP,
  FLAT_INDEX,
  forEachBindingChunk,
  launchFlat,
} from './elementwise.ts';
import { advance } from './buffer-ref.ts';
import { dropoutKeepScale, dropoutThreshold } from '../dropout.ts';
import { VECTOR_OPS } from '../kernels/vector-ops.ts';
import type { GpuTable } from './kernel-table.ts';

function binaryKernel(name: string, expression: string): KernelDef {
  return {
    key: name,
    params: { n: 'u32' },
    buffers: [
      { name: 'a', dtype: 'f32', access: 'read' },
      { name: 'b', dtype: 'f32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  let x = a[P.a_off + i];
  let y = b[P.b_off + i];
  out[P.out_off + i] = ${expression};
`,
  };
}

const ADD = binaryKernel('add', 'x + y');

/** LoRA dropout with engine/dropout.ts's hash of (seed, i); out may alias x (same binding). */
const DROPOUT: KernelDef = {
  key: 'dropout',
  // `first`: index of this dispatch's element 0 in the whole tensor (the mask is over the whole).
  params: { n: 'u32', first: 'u32', threshold: 'u32', keep: 'f32', seed: 'u32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read' },
    { name: 'out', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  var h = P.seed * 0x9e3779b1u + P.first + i;
  h = (h ^ (h >> 16u)) * 0x85ebca6bu;
  h = (h ^ (h >> 13u)) * 0xc2b2ae35u;
  h = h ^ (h >> 16u);
  let value = x[P.x_off + i] * P.keep;
  out[P.out_off + i] = select(value, 0.0, h < P.threshold);
`,
};

const AXPBY: KernelDef = {
  key: 'axpby',
  ...specBindings(VECTOR_OPS.axpby),
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  var value = P.alpha * x[P.x_off + i];
  // beta == 0 overwrites y without reading it (it may hold NaN), like the CPU backend.
  if (P.beta != 0.0) { value += P.beta * y[P.y_off + i]; }
  y[P.y_off + i] = value;
`,
};

const FILL: KernelDef = {
  key: 'fill',
  params: { n: 'u32', bits: 'u32' },
  buffers: [{ name: 'x', dtype: 'u32', access: 'read_write' }],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  x[P.x_off + i] = P.bits;
`,
};

const SCALE_BY_SCALAR: KernelDef = {
  key: 'scale-by-scalar',
  params: { n: 'u32', divisor: 'f32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read_write' },
    { name: 'factor', dtype: 'f32', access: 'read' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  x[P.x_off + i] *= factor[P.factor_off] / P.divisor;
`,
};

/** x *= factor[0] / divisor over n f32 elements; the factor stays on the device (a backward seed). */
export const vectorOps: GpuTable<typeof VECTOR_OPS> = {
  add: ({ a, b, out }, { n }, runner) => launchFlat(runner, ADD, { a, b, out }, n),
  axpby: ({ x, y }, { n, alpha, beta }, runner) =>
    launchFlat(runner, AXPBY, { x, y }, n, { alpha, beta }),
  fill: ({ x }, { n, value }, runner) => {
    const bits =
      x.dtype === 'i32' ? value >>> 0 : new Uint32Array(Float32Array.of(value).buffer)[0]!;
    launchFlat(runner, FILL, { x }, n, { bits });
  },
  dropout: ({ x, out }, { n, p, seed }, runner) => {
    const params = { threshold: dropoutThreshold(p), keep: dropoutKeepScale(p), seed: seed >>> 0 };
    forEachBindingChunk(runner, n, (first, count) => {
      runner.dispatch(
        DROPOUT,
        {
          x: { ref: advance(x, first * 4), elements: count },
          out: { ref: advance(out, first * 4), elements: count },
        },
        { ...params, n: count, first },
        runner.grid1d(Math.ceil(count / ELEMENTWISE_WORKGROUP)),
      );
    });
  },
  /** Converts n elements between f32, f16 and bf16 (same dtype: a copy). */
  convert: ({ src, dst }, { n }, runner) => {
    const [srcDtype, dstDtype] = [src.dtype, dst.dtype] as FloatDtype[];
    const words = dstDtype === 'f32' ? n : Math.ceil(n / 2) + 1;
    runner.dispatch(
      convertKernel(srcDtype, dstDtype),
      { src: { ref: src, elements: n }, dst: { ref: dst, elements: n } },
      { n },
      runner.grid1d(Math.ceil(words / ELEMENTWISE_WORKGROUP)),
    );
  },
  scaleByScalar: ({ x, factor }, { n, divisor }, runner) => {
    forEachBindingChunk(runner, n, (start, count) => {
      runner.dispatch(
        SCALE_BY_SCALAR,
        {
          x: { ref: advance(x, start * 4), elements: count },
          factor: { ref: factor, elements: 1 },
        },
        { n: count, divisor },
        runner.grid1d(Math.ceil(count / ELEMENTWISE_WORKGROUP)),
      );
    });
  },
};

export type FloatDtype = 'f32' | 'f16' | 'bf16';

/**
 * WGSL `fn narrow(value: f32) -> u32`: f32 to half bits with round-to-nearest-even, bit for bit
 * as src/engine/half.ts (overflow to inf, subnormals, NaN kept quiet).
 */
function narrowFn(dtype: 'f16' | 'bf16'): string {
  if (dtype === 'bf16') {
    return `
fn narrow(value: f32) -> u32 {
  let x = bitcast<u32>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) { return 0x7fc0u; }
  return ((x + 0x7fffu + ((x >> 16u) & 1u)) >> 16u) & 0xffffu;
}`;
  }
  return `
fn roundShift(mant: u32, shift: u32) -> u32 {
  let half = 1u << (shift - 1u);
  let rest = mant & ((1u << shift) - 1u);
  var r = mant >> shift;
  if (rest > half || (rest == half && (r & 1u) == 1u)) { r += 1u; }
  return r;
}
fn narrow(value: f32) -> u32 {
  let x = bitcast<u32>(value);
  let sign = (x >> 16u) & 0x8000u;
  let exponent = i32((x >> 23u) & 0xffu);
  let mant = x & 0x7fffffu;
  if (exponent == 255) { return sign | 0x7c00u | select(0u, 0x200u, mant != 0u); }
  let e = exponent - 127 + 15;
  if (e >= 31) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    return sign | roundShift(mant | 0x800000u, u32(14 - e));
  }
  // A mantissa that rounds up to 0x400 carries into the exponent, which the addition does.
  return sign | ((u32(e) << 10u) + roundShift(mant, 13u));
}`;
}

function convertKernel(src: FloatDtype, dst: FloatDtype): KernelDef {
  const params = { n: 'u32' } as const;
  const buffers = [
    { name: 'src', dtype: src as StorageDtype, access: 'read' as const },
    { name: 'dst', dtype: dst as StorageDtype, access: 'read_write' as const },
  ];
  const load = wgslLoader('load', 'src', src);
  if (dst === 'f32') {
    return {
      key: `convert:${src}:f32`,
      params,
      buffers,
      workgroupSize: [ELEMENTWISE_WORKGROUP],
      prelude: load,
      body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  dst[P.dst_off + i] = load(P.src_off + i);
`,
    };
  }
  // One thread per destination u32 word; a word only partly inside the range keeps its other
  // half, which may belong to a neighbouring tensor.
  return {
    key: `convert:${src}:${dst}`,
    params,
    buffers,
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    prelude: `${load}\n${narrowFn(dst)}`,
    body: `
  let w = gid.x + gid.y * nwg.x * ${ELEMENTWISE_WORKGROUP}u + P.dst_off / 2u;
  let end = P.dst_off + P.n;
  if (w * 2u >= end) { return; }
  var word = dst[w];
  for (var h = 0u; h < 2u; h++) {
    let e = w * 2u + h;
    if (e < P.dst_off || e >= end) { continue; }
    let shift = h * 16u;
    word = (word & ~(0xffffu << shift)) | (narrow(load(P.src_off + e - P.dst_off)) << shift);
  }
  dst[w] = word;
`,
  };
}
