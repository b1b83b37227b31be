/** Small helpers shared by the ops. */
import type { Kernels } from '../backend.ts';
import { gradSlot } from '../tape.ts';
import { getBackend, Tensor } from '../tensor.ts';

export function kernels(): Kernels {
  return getBackend().kernels;
}

/** Rows and columns of a tensor seen as a matrix [prod(leading dims), last dim]. */
export function matrixDims(t: Tensor): [number, number] {
  const cols = t.shape.at(-1)!;
  return [t.size / cols, cols];
}

/** Runs a GEMM that accumulates into `t`'s gradient (beta = 1), or overwrites a fresh one. */
export function gemmIntoGrad(t: Tensor, run: (grad: Tensor, beta: number) => void): void {
  const { grad, fresh } = gradSlot(t);
  run(grad, fresh ? 0 : 1);
}

/**
 * Where a kernel that can only overwrite its output should write `t`'s gradient: straight into
 * a fresh gradient buffer, or into a temporary that `commit` adds to the existing one. For a
 * tensor that needs no gradient it is scratch space and `commit` does nothing.
 */
export function gradTarget(t: Tensor): { dst: Tensor; commit: () => void } {
  if (!t.requiresGrad) return { dst: Tensor.empty(t.shape), commit: () => {} };
  const { grad, fresh } = gradSlot(t);
  if (fresh) return { dst: grad, commit: () => {} };
  const tmp = Tensor.empty(t.shape);
  return {
    dst: tmp,
    commit: () =>
      kernels().add({ a: grad.operand(), b: tmp.operand(), out: grad.operand() }, { n: grad.size }),
  };
}

/** Single-output form of gradTarget. */
export function writeIntoGrad(t: Tensor, run: (dst: Tensor) => void): void {
  const { dst, commit } = gradTarget(t);
  run(dst);
  commit();
}

/** Gradient slot zero-filled when fresh, for kernels that only accumulate. */
export function zeroedGrad(t: Tensor): Tensor {
  const { grad, fresh } = gradSlot(t);
  if (fresh) kernels().fill({ x: grad.operand() }, { n: grad.size, value: 0 });
  return grad;
}

/**
 * Output features [offset, offset + count) of a projection: one block of a fused matrix (Phi-3's
 * qkv_proj → q, k, v), computed straight from the weight rows it owns.
 */
export interface OutputBlock {
  offset: number;
  count: number;
}

/**
 * The gradient of `t` to accumulate rows of a block into (beta 1): a fresh gradient is zeroed
 * first unless the block covers all of `t` (then beta 0 overwrites it), since the other blocks
 * write their rows later.
 */
export function blockGrad(t: Tensor, whole: boolean): { grad: Tensor; beta: number } {
  if (!whole) return { grad: zeroedGrad(t), beta: 1 };
  const { grad, fresh } = gradSlot(t);
  return { grad, beta: fresh ? 0 : 1 };
}
