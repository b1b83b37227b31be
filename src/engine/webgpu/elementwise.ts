/**
 * One-thread-per-element kernels over flat f32 vectors: the gated-MLP activations (SwiGLU,
 * GELU-tanh) forward/backward and scaling.
 * Vectors longer than one storage binding are processed in binding-sized chunks.
 */
import type { GateActivation } from '../backend.ts';
import type { KernelDef } from './kernel-def.ts';
import { advance, type BufferRef } from './buffer-ref.ts';
import type { KernelRunner } from './runner.ts';
import { ELEMENTWISE } from '../kernels/elementwise.ts';
import type { GpuTable } from './kernel-table.ts';

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

/** WGSL `act(g)` and `act_grad(g)` of each gate activation of the gated MLP. */
const ACTIVATIONS: Record<GateActivation, string> = {
  silu: `${SIGMOID}
fn act(g: f32) -> f32 { return g * sigmoid(g); }
// d/dg [g * sigmoid(g)] = sigmoid(g) * (1 + g * (1 - sigmoid(g)))
fn act_grad(g: f32) -> f32 { let s = sigmoid(g); return s * (1.0 + g * (1.0 - s)); }`,
  // 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³)
  gelu_tanh: `${SIGMOID}
const GELU_K: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;
fn gelu_sigmoid(x: f32) -> f32 { return sigmoid(2.0 * GELU_K * (x + GELU_C * x * x * x)); }
fn act(g: f32) -> f32 { return g * gelu_sigmoid(g); }
fn act_grad(g: f32) -> f32 {
  let s = gelu_sigmoid(g);
  return s + g * s * (1.0 - s) * 2.0 * GELU_K * (1.0 + 3.0 * GELU_C * g * g);
}`,
};

function gatedForwardDef(activation: GateActivation): KernelDef {
  return {
    key: `gated-${activation}-forward`,
    params: { n: 'u32' },
    buffers: [
      { name: 'gate', dtype: 'f32', access: 'read' },
      { name: 'up', dtype: 'f32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    prelude: ACTIVATIONS[activation],
    body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  out[P.out_off + i] = act(gate[P.gate_off + i]) * up[P.up_off + i];
`,
  };
}

function gatedBackwardDef(activation: GateActivation): KernelDef {
  return {
    key: `gated-${activation}-backward`,
    params: { n: 'u32' },
    buffers: [
      { name: 'gate', dtype: 'f32', access: 'read' },
      { name: 'up', dtype: 'f32', access: 'read' },
      { name: 'dout', dtype: 'f32', access: 'read' },
      { name: 'dgate', dtype: 'f32', access: 'read_write' },
      { name: 'dup', dtype: 'f32', access: 'read_write' },
    ],
    workgroupSize: [ELEMENTWISE_WORKGROUP],
    prelude: ACTIVATIONS[activation],
    body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  let g = gate[P.gate_off + i];
  let d = dout[P.dout_off + i];
  dgate[P.dgate_off + i] = d * up[P.up_off + i] * act_grad(g);
  dup[P.dup_off + i] = d * act(g);
`,
  };
}

const GATED_FORWARD = { silu: gatedForwardDef('silu'), gelu_tanh: gatedForwardDef('gelu_tanh') };
const GATED_BACKWARD = { silu: gatedBackwardDef('silu'), gelu_tanh: gatedBackwardDef('gelu_tanh') };

export const elementwise: GpuTable<typeof ELEMENTWISE> = {
  /** out = act(gate) * up: silu (SwiGLU) or gelu_tanh. */
  gatedForward: ({ gate, up, out }, { n, activation }, runner) => {
    launchFlat(runner, GATED_FORWARD[activation], { gate, up, out }, n);
  },
  /** dgate, dup (overwritten) from dout. */
  gatedBackward: ({ gate, up, dout, dgate, dup }, { n, activation }, runner) => {
    launchFlat(runner, GATED_BACKWARD[activation], { gate, up, dout, dgate, dup }, n);
  },
};
