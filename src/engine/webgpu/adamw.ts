/**
 * AdamW step with decoupled weight decay (PyTorch's formulation):
 *   p *= 1 - lr * weightDecay
 *   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
 *   p -= lr * (m / bc1) / (sqrt(v / bc2) + eps)      with bc1 = 1 - beta1^t, bc2 = 1 - beta2^t
 */
import type { KernelDef } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX, launchFlat } from './elementwise.ts';
import type { BufferRef, KernelRunner } from './runner.ts';

const ADAMW: KernelDef = {
  key: 'adamw',
  params: {
    n: 'u32',
    lr: 'f32',
    beta1: 'f32',
    beta2: 'f32',
    eps: 'f32',
    weightDecay: 'f32',
    bc1: 'f32',
    bc2: 'f32',
  },
  buffers: [
    { name: 'p', dtype: 'f32', access: 'read_write' },
    { name: 'g', dtype: 'f32', access: 'read' },
    { name: 'm', dtype: 'f32', access: 'read_write' },
    { name: 'v', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  let grad = g[P.g_off + i];
  let m1 = P.beta1 * m[P.m_off + i] + (1.0 - P.beta1) * grad;
  let v1 = P.beta2 * v[P.v_off + i] + (1.0 - P.beta2) * grad * grad;
  m[P.m_off + i] = m1;
  v[P.v_off + i] = v1;
  let decayed = p[P.p_off + i] * (1.0 - P.lr * P.weightDecay);
  p[P.p_off + i] = decayed - P.lr * (m1 / P.bc1) / (sqrt(v1 / P.bc2) + P.eps);
`,
};

export function adamwStep(
  runner: KernelRunner,
  p: BufferRef,
  g: BufferRef,
  m: BufferRef,
  v: BufferRef,
  n: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  bc1: number,
  bc2: number,
): void {
  launchFlat(runner, ADAMW, { p, g, m, v }, n, { lr, beta1, beta2, eps, weightDecay, bc1, bc2 });
}
