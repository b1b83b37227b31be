/**
 * Rotary position embedding, rotate-half layout: within each head, element d < D/2 pairs with
 * d + D/2 and the pair is rotated by positions[b,t] * invFreq[d] (negated when `inverse`, which
 * is the backward); invFreq f32 [D/2] is the model's table (models/rope-frequencies.ts). One
 * thread per pair; each thread reads both values before writing, so `out` may be `x`.
 */
import type { KernelDef } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX } from './elementwise.ts';
import { ROPE } from '../kernels/rope.ts';
import type { GpuTable } from './kernel-table.ts';

const ROPE_KERNEL: KernelDef = {
  key: 'rope',
  params: { pairs: 'u32', heads: 'u32', dim: 'u32', sign: 'f32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read' },
    { name: 'out', dtype: 'f32', access: 'read_write' },
    { name: 'positions', dtype: 'i32', access: 'read' },
    { name: 'invFreq', dtype: 'f32', access: 'read' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.pairs) { return; }
  let half = P.dim / 2u;
  let d = i % half;
  let rowIndex = i / half;          // (b * T + t) * heads + head
  let token = rowIndex / P.heads;   // b * T + t
  let lo = rowIndex * P.dim + d;
  let hi = lo + half;
  // Same f32 arithmetic as HF: angle = position * inv_freq.
  let angle = f32(positions[P.positions_off + token]) * invFreq[P.invFreq_off + d];
  let c = cos(angle);
  let s = P.sign * sin(angle);
  let a = x[P.x_off + lo];
  let b = x[P.x_off + hi];
  out[P.out_off + lo] = a * c - b * s;
  out[P.out_off + hi] = b * c + a * s;
`,
};

export const rope: GpuTable<typeof ROPE> = {
  /** x/out `[B,T,heads,D]`, positions i32 `[B,T]`, invFreq f32 `[D/2]`. */
  ropeApply: ({ x, out, positions, invFreq }, { B, T, H: heads, D, inverse }, runner) => {
    const elements = B * T * heads * D;
    const pairs = elements / 2;
    runner.dispatch(
      ROPE_KERNEL,
      {
        x: { ref: x, elements },
        out: { ref: out, elements },
        positions: { ref: positions, elements: B * T },
        invFreq: { ref: invFreq, elements: D / 2 },
      },
      { pairs, heads, dim: D, sign: inverse ? -1 : 1 },
      runner.grid1d(Math.ceil(pairs / ELEMENTWISE_WORKGROUP)),
    );
  },
};
