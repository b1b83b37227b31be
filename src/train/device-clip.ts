/**
 * clip.ts's global gradient-norm clipping for gradients in device memory: the backend sums the
 * squares of each tensor, the host adds those sums in float64, and the gradients are scaled on
 * the device by the same float32 coefficient torch uses.
 */
import type { Tensor } from '../engine/tensor.ts';
import { LoraforgeError } from '../util/errors.ts';
import { clipCoefficient } from './clip.ts';

/** L2 norm over all gradients together. */
export async function deviceGradNorm(grads: readonly Tensor[]): Promise<number> {
  // All sums are requested before any is awaited, so a device backend reads them back together.
  const sums = await Promise.all(
    grads.map((g) => g.backend.kernels.sumSquares({ x: g.operand() }, { n: g.size })),
  );
  let sumSq = 0;
  for (const sum of sums) sumSq += sum;
  return Math.sqrt(sumSq);
}

/**
 * Clips `grads` in place to global L2 norm `maxNorm` and returns the norm before clipping; a
 * NaN / infinite norm leaves the gradients untouched and is returned for the caller to act on.
 */
export async function clipDeviceGradNorm(
  grads: readonly Tensor[],
  maxNorm: number,
): Promise<number> {
  if (!(maxNorm > 0)) throw new LoraforgeError(`max grad norm must be > 0, got ${maxNorm}`);
  const norm = await deviceGradNorm(grads);
  if (!Number.isFinite(norm)) return norm;
  const coef = clipCoefficient(norm, maxNorm);
  if (coef < 1) {
    for (const g of grads)
      g.backend.kernels.axpby(
        { x: g.operand(), y: g.operand() },
        { n: g.size, alpha: 0, beta: coef },
      ); // g = coef · g
  }
  return norm;
}
