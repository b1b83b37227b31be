/**
 * What the attention kernels (attention.ts) and their first version, kept as the benchmark's
 * baseline (bench/attention-webgpu-legacy.ts), share: tile sizing, the masks, the backward's row-delta kernel
 * and its buffers and params.
 */
import type { KernelDef } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX } from './elementwise.ts';
import type { BufferRef } from './runner.ts';

export const ROWS_PER_WORKGROUP = 32;
/** Workgroup memory for streamed tiles: WebGPU's guaranteed minimum is 16 KiB. */
const TILE_BYTES = 16384;

/** Rows per streamed tile when each row takes `bytesPerRow` bytes of workgroup memory. */
export function tileRows(bytesPerRow: number): number {
  return Math.max(1, Math.min(ROWS_PER_WORKGROUP, Math.floor(TILE_BYTES / bytesPerRow)));
}

export interface Masking {
  keyMask: boolean;
  segIds: boolean;
}

export function maskBuffers(m: Masking) {
  return [
    ...(m.keyMask ? [{ name: 'keyMask', dtype: 'i32' as const, access: 'read' as const }] : []),
    ...(m.segIds ? [{ name: 'segIds', dtype: 'i32' as const, access: 'read' as const }] : []),
  ];
}

/** WGSL `fn visible(b, p, j) -> bool` for the chosen masks (kvCap is the mask row length). */
export function visibleFn(m: Masking): string {
  return `
fn visible(b: u32, p: u32, j: u32) -> bool {
  if (j > p || (P.window > 0u && j + P.window <= p)) { return false; }
  ${m.keyMask ? 'if (keyMask[P.keyMask_off + b * P.kvCap + j] == 0) { return false; }' : ''}
  ${m.segIds ? 'if (segIds[P.segIds_off + b * P.kvCap + j] != segIds[P.segIds_off + b * P.kvCap + p]) { return false; }' : ''}
  return true;
}`;
}

export const maskKey = (m: Masking) => `${m.keyMask ? 'mask' : ''}${m.segIds ? 'seg' : ''}`;

export const DELTA: KernelDef = {
  key: 'attention-backward-delta',
  params: { rows: 'u32', T: 'u32', H: 'u32', D: 'u32' },
  buffers: [
    { name: 'out', dtype: 'f32', access: 'read' },
    { name: 'dout', dtype: 'f32', access: 'read' },
    { name: 'delta', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.rows) { return; }
  // i enumerates [B, T, H] rows; delta is laid out [B, H, T] like lse.
  let h = i % P.H;
  let t = (i / P.H) % P.T;
  let b = i / (P.H * P.T);
  var acc = 0.0;
  for (var d = 0u; d < P.D; d++) { acc = fma(out[P.out_off + i * P.D + d], dout[P.dout_off + i * P.D + d], acc); }
  delta[P.delta_off + (b * P.H + h) * P.T + t] = acc;
`,
};

/** Uniform params of both the dq and the dk/dv kernel. */
/** The forward kernels' parameters (row and tiled; each adds its own). */
export const FORWARD_PARAMS = {
  Tq: 'u32',
  Tk: 'u32',
  kvCap: 'u32',
  H: 'u32',
  KVH: 'u32',
  scale: 'f32',
  emptyRowLse: 'f32',
  window: 'u32',
} as const;

export const BACKWARD_PARAMS = {
  T: 'u32',
  kvCap: 'u32',
  H: 'u32',
  KVH: 'u32',
  scale: 'f32',
  window: 'u32',
} as const;

export function backwardBuffers(m: Masking, outputs: string[]) {
  return [
    { name: 'q', dtype: 'f32' as const, access: 'read' as const },
    { name: 'k', dtype: 'f32' as const, access: 'read' as const },
    { name: 'v', dtype: 'f32' as const, access: 'read' as const },
    { name: 'dout', dtype: 'f32' as const, access: 'read' as const },
    { name: 'lse', dtype: 'f32' as const, access: 'read' as const },
    { name: 'delta', dtype: 'f32' as const, access: 'read' as const },
    ...outputs.map((name) => ({ name, dtype: 'f32' as const, access: 'read_write' as const })),
    ...maskBuffers(m),
  ];
}

export function maskArgs(
  B: number,
  kvCap: number,
  keyMask: BufferRef | null,
  segIds: BufferRef | null,
) {
  return {
    ...(keyMask ? { keyMask: { ref: keyMask, elements: B * kvCap } } : {}),
    ...(segIds ? { segIds: { ref: segIds, elements: B * kvCap } } : {}),
  };
}
