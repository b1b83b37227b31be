/**
 * Rotary position embedding, rotate-half layout: within each head, element d < R/2 pairs with
 * d + R/2 (R = rotaryDim, the rotated part: the whole head unless partial) and the pair is rotated
 * by positions[b,t] * invFreq[d] (negated when `inverse`, which is the backward), with cos and sin
 * times `scale` (LongRoPE's attention factor); invFreq f32 [R/2] is the model's table
 * (models/rope-frequencies.ts). One thread per pair of a head: threads past R/2 copy two of the
 * D − R values that do not turn. Each thread reads its values before writing, so `out` may be `x`.
 */
import type { KernelDef } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX } from './elementwise.ts';
import { ROPE } from '../kernels/rope.ts';
import type { GpuTable } from './kernel-table.ts';

const ROPE_KERNEL: KernelDef = {
  key: 'rope',
  params: { pairs: 'u32', heads: 'u32', dim: 'u32', rotary: 'u32', sign: 'f32', scale: 'f32' },
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
  let d = i % (P.dim / 2u);
  let rowIndex = i / (P.dim / 2u);  // (b * T + t) * heads + head
  let token = rowIndex / P.heads;   // b * T + t
  let half = P.rotary / 2u;
  if (d >= half) {
    let e = rowIndex * P.dim + P.rotary + 2u * (d - half);
    out[P.out_off + e] = x[P.x_off + e];
    out[P.out_off + e + 1u] = x[P.x_off + e + 1u];
    return;
  }
  let lo = rowIndex * P.dim + d;
  let hi = lo + half;
  // Same f32 arithmetic as HF: angle = position * inv_freq; cos, sin times the attention factor.
  let angle = f32(positions[P.positions_off + token]) * invFreq[P.invFreq_off + d];
  let c = cos(angle) * P.scale;
  let s = P.sign * (sin(angle) * P.scale);
  let a = x[P.x_off + lo];
  let b = x[P.x_off + hi];
  out[P.out_off + lo] = a * c - b * s;
  out[P.out_off + hi] = b * c + a * s;
`,
};

export const rope: GpuTable<typeof ROPE> = {
  /** x/out `[B,T,heads,D]`, positions i32 `[B,T]`, invFreq f32 `[rotaryDim/2]`. */
  ropeApply: (
    { x, out, positions, invFreq },
    { B, T, H: heads, D, inverse, rotaryDim, scale },
    runner,
  ) => {
    const elements = B * T * heads * D;
    const pairs = elements / 2;
    runner.dispatch(
      ROPE_KERNEL,
      {
        x: { ref: x, elements },
        out: { ref: out, elements },
        positions: { ref: positions, elements: B * T },
        invFreq: { ref: invFreq, elements: rotaryDim / 2 },
      },
      { pairs, heads, dim: D, rotary: rotaryDim, sign: inverse ? -1 : 1, scale },
      runner.grid1d(Math.ceil(pairs / ELEMENTWISE_WORKGROUP)),
    );
  },
};
