/**
 * AdamW with the exact semantics of `torch.optim.AdamW` (single-tensor path, amsgrad off):
 *
 *   p ← p · (1 − lr·wd)                         decoupled weight decay, before the moments
 *   m ← β1·m + (1 − β1)·g
 *   v ← β2·v + (1 − β2)·g·g
 *   p ← p − (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)
 *
 * PyTorch computes every scalar (1 − lr·wd, 1 − β1, 1 − β2, lr / bc1, sqrt(bc2)) in float64 and
 * rounds it to float32 once; only the tensor operations run in float32. So the host computes the
 * scalars (`adamwScalars`) and the kernel receives them: a kernel that formed 1 − β2 in float32
 * would be 1.3e-5 relative off for β2 = 0.999 (0.00099998713 instead of 0.0010000000475).
 */
import { defineKernel } from './spec.ts';

/** The float64 scalars of one AdamW step, each rounded to float32 once by the kernel. */
export interface AdamWScalars {
  decay: number;
  beta1: number;
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** lr / bc1, bc1 = 1 − β1^t. */
  stepSize: number;
  /** sqrt(bc2), bc2 = 1 − β2^t. */
  bc2Sqrt: number;
  eps: number;
}

export function adamwScalars(
  lr: number,
  [beta1, beta2]: readonly [number, number],
  eps: number,
  weightDecay: number,
  bc1: number,
  bc2: number,
): AdamWScalars {
  return {
    decay: 1 - lr * weightDecay,
    beta1,
    oneMinusBeta1: 1 - beta1,
    beta2,
    oneMinusBeta2: 1 - beta2,
    stepSize: lr / bc1,
    bc2Sqrt: Math.sqrt(bc2),
    eps,
  };
}

/** One AdamW update of n f32 values, in place on p, m and v. */
export const adamwStep = defineKernel({
  name: 'adamwStep',
  buffers: {
    p: { dtype: 'f32', access: 'read_write' },
    g: { dtype: 'f32', access: 'read' },
    m: { dtype: 'f32', access: 'read_write' },
    v: { dtype: 'f32', access: 'read_write' },
  },
  params: {
    n: 'u32',
    decay: 'f32',
    beta1: 'f32',
    oneMinusBeta1: 'f32',
    beta2: 'f32',
    oneMinusBeta2: 'f32',
    stepSize: 'f32',
    bc2Sqrt: 'f32',
    eps: 'f32',
  },
  // float32 arithmetic in PyTorch's order: Math.fround after each operation.
  reference({ p, g, m, v }, s) {
    const f = Math.fround;
    const [decay, b1, c1, b2, c2] = [
      s.decay,
      s.beta1,
      s.oneMinusBeta1,
      s.beta2,
      s.oneMinusBeta2,
    ].map(f);
    const [stepSize, bc2Sqrt, eps] = [s.stepSize, s.bc2Sqrt, s.eps].map(f);
    for (let i = 0; i < s.n; i++) {
      const gi = g[i]!;
      const pi = f(p[i]! * decay!);
      const mi = f(f(m[i]! * b1!) + f(c1! * gi)); // exp_avg.mul_(β1).add_(g, alpha=1−β1)
      const vi = f(f(v[i]! * b2!) + f(f(c2! * gi) * gi)); // exp_avg_sq.mul_(β2).addcmul_(g, g, value=1−β2)
      const denom = f(f(f(Math.sqrt(vi)) / bc2Sqrt!) + eps!); // (v.sqrt() / sqrt(bc2)).add_(eps)
      p[i] = f(pi - f(f(stepSize! * mi) / denom)); // p.addcdiv_(m, denom, value=−step_size)
      m[i] = mi;
      v[i] = vi;
    }
  },
});

export const ADAMW = { adamwStep } as const;
