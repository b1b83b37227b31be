/**
 * One-thread-per-element kernels over flat f32 vectors: SwiGLU forward/backward and scaling.
 * Vectors longer than one storage binding are processed in binding-sized chunks.
 */
import type { KernelDef } from './kernel-def.ts';
import { advance, type BufferRef } from './buffer-ref.ts';
import type { KernelRunner } from './runner.ts';

export const ELEMENTWISE_WORKGROUP = 256;

/** WGSL statement defining `i`, the flat element index of a 1-D launch laid out by `grid1d`. */
export const FLAT_INDEX = `let i = gid.x + gid.y * nwg.x * ${ELEMENTWISE_WORKGROUP}u;`;

/**
 * Calls `run(start, count)` over [0, n) in chunks whose f32 ranges each fit one binding.
 */
export function forEachBindingChunk(
  runner: KernelRunner,
  n: number,
  run: (start: number, count: number) => void,
): void {
  const maxElements = Math.floor((runner.maxBindingBytes - runner.bindingAlignment) / 4);
  for (let start = 0; start < n; start += maxElements) run(start, Math.min(maxElements, n - start));
}

/** Launches a flat kernel over `n` elements of equally long f32 vectors (chunked per binding). */
export function launchFlat(
  runner: KernelRunner,
  def: KernelDef,
  refs: Record<string, BufferRef>,
  n: number,
  params: Record<string, number> = {},
): void {
  forEachBindingChunk(runner, n, (start, count) => {
    const buffers = Object.fromEntries(
      Object.entries(refs).map(([name, ref]) => [
        name,
        { ref: advance(ref, start * 4), elements: count },
      ]),
    );
    runner.dispatch(
      def,
      buffers,
      { ...params, n: count },
      runner.grid1d(Math.ceil(count / ELEMENTWISE_WORKGROUP)),
    );
  });
}

const SIGMOID = 'fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }';

const SWIGLU_FORWARD: KernelDef = {
  key: 'swiglu-forward',
  params: { n: 'u32' },
  buffers: [
    { name: 'gate', dtype: 'f32', access: 'read' },
    { name: 'up', dtype: 'f32', access: 'read' },
    { name: 'out', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  prelude: SIGMOID,
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  let g = gate[P.gate_off + i];
  out[P.out_off + i] = g * sigmoid(g) * up[P.up_off + i];
`,
};

const SWIGLU_BACKWARD: KernelDef = {
  key: 'swiglu-backward',
  params: { n: 'u32' },
  buffers: [
    { name: 'gate', dtype: 'f32', access: 'read' },
    { name: 'up', dtype: 'f32', access: 'read' },
    { name: 'dout', dtype: 'f32', access: 'read' },
    { name: 'dgate', dtype: 'f32', access: 'read_write' },
    { name: 'dup', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  prelude: SIGMOID,
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  let g = gate[P.gate_off + i];
  let u = up[P.up_off + i];
  let d = dout[P.dout_off + i];
  let s = sigmoid(g);
  // d/dg [g * sigmoid(g)] = sigmoid(g) * (1 + g * (1 - sigmoid(g)))
  dgate[P.dgate_off + i] = d * u * s * (1.0 + g * (1.0 - s));
  dup[P.dup_off + i] = d * g * s;
`,
};

const SCALE: KernelDef = {
  key: 'scale',
  params: { n: 'u32', alpha: 'f32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read' },
    { name: 'out', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  out[P.out_off + i] = P.alpha * x[P.x_off + i];
`,
};

/** out = silu(gate) * up. */
export function swigluForward(
  runner: KernelRunner,
  gate: BufferRef,
  up: BufferRef,
  out: BufferRef,
  n: number,
): void {
  launchFlat(runner, SWIGLU_FORWARD, { gate, up, out }, n);
}

/** dgate, dup (overwritten) from dout. */
export function swigluBackward(
  runner: KernelRunner,
  gate: BufferRef,
  up: BufferRef,
  dout: BufferRef,
  dgate: BufferRef,
  dup: BufferRef,
  n: number,
): void {
  launchFlat(runner, SWIGLU_BACKWARD, { gate, up, dout, dgate, dup }, n);
}

/** out = alpha * x (out may be x). */
export function scale(
  runner: KernelRunner,
  x: BufferRef,
  alpha: number,
  out: BufferRef,
  n: number,
): void {
  launchFlat(runner, SCALE, { x, out }, n, { alpha });
}
