/**
 * AdamW on WebGPU (kernels/adamw.ts): the float32 operations of PyTorch's step in its order,
 * with every scalar computed on the host in float64.
 */
import { ADAMW } from '../kernels/adamw.ts';
import { specBindings, type KernelDef } from './kernel-def.ts';
import { ELEMENTWISE_WORKGROUP, FLAT_INDEX, launchFlat } from './elementwise.ts';
import type { GpuTable } from './kernel-table.ts';

const ADAMW_STEP: KernelDef = {
  key: 'adamw',
  ...specBindings(ADAMW.adamwStep),
  workgroupSize: [ELEMENTWISE_WORKGROUP],
  body: `
  ${FLAT_INDEX}
  if (i >= P.n) { return; }
  let grad = g[P.g_off + i];
  let m1 = P.beta1 * m[P.m_off + i] + P.oneMinusBeta1 * grad;
  let v1 = P.beta2 * v[P.v_off + i] + (P.oneMinusBeta2 * grad) * grad;
  m[P.m_off + i] = m1;
  v[P.v_off + i] = v1;
  let denom = sqrt(v1) / P.bc2Sqrt + P.eps;
  p[P.p_off + i] = p[P.p_off + i] * P.decay - (P.stepSize * m1) / denom;
`,
};

export const adamw: GpuTable<typeof ADAMW> = {
  adamwStep: ({ p, g, m, v }, { n, ...scalars }, runner) =>
    launchFlat(runner, ADAMW_STEP, { p, g, m, v }, n, scalars),
};
