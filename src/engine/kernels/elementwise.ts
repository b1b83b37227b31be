/**
 * The gated MLP's activation, down(act(gate) · up): `silu` (SwiGLU: Llama, Qwen) or `gelu_tanh`
 * (Gemma), gelu_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), torch's approximate='tanh'.
 */
import type { GateActivation } from '../backend.ts';
import { defineKernel } from './spec.ts';

const ACTIVATIONS = ['silu', 'gelu_tanh'] as const satisfies readonly GateActivation[];

function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/** Each gate activation and its derivative. */
const GATES: Record<GateActivation, { act(x: number): number; grad(x: number): number }> = {
  silu: {
    act: (x) => x * sigmoid(x),
    grad: (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x))),
  },
  gelu_tanh: {
    act: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
    grad: (x) => {
      const k = Math.sqrt(2 / Math.PI);
      const t = Math.tanh(k * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    },
  },
};

/** out = act(gate) · up. */
export const gatedForward = defineKernel({
  name: 'gatedForward',
  buffers: {
    gate: { dtype: 'f32', access: 'read' },
    up: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
  },
  params: { n: 'u32', activation: ACTIVATIONS },
  reference({ gate, up, out }, { n, activation }) {
    const { act } = GATES[activation];
    for (let i = 0; i < n; i++) out[i] = act(gate[i]!) * up[i]!;
  },
});

/** dgate = dout · up · act'(gate), dup = dout · act(gate) (overwritten; may alias gate / up). */
export const gatedBackward = defineKernel({
  name: 'gatedBackward',
  buffers: {
    gate: { dtype: 'f32', access: 'read' },
    up: { dtype: 'f32', access: 'read' },
    dout: { dtype: 'f32', access: 'read' },
    dgate: { dtype: 'f32', access: 'write' },
    dup: { dtype: 'f32', access: 'write' },
  },
  params: { n: 'u32', activation: ACTIVATIONS },
  reference({ gate, up, dout, dgate, dup }, { n, activation }) {
    const { act, grad } = GATES[activation];
    for (let i = 0; i < n; i++) {
      const g = gate[i]!;
      const u = up[i]!;
      dgate[i] = dout[i]! * u * grad(g);
      dup[i] = dout[i]! * act(g);
    }
  },
});

export const ELEMENTWISE = { gatedForward, gatedBackward } as const;
