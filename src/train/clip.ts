/**
 * Global gradient-norm clipping as `torch.nn.utils.clip_grad_norm_` (L2) does it, which is what
 * HF Trainer calls with max_grad_norm: norm over all gradients together, then every gradient is
 * scaled by max_norm / (norm + 1e-6) when that factor is below 1.
 */
import { LoraforgeError } from '../util/errors.ts';

/** L2 norm over all arrays together, accumulated in float64 (summation order cannot lose bits of note). */
export function globalGradNorm(grads: readonly Float32Array[]): number {
  let sumSq = 0;
  for (const g of grads) {
    for (let i = 0; i < g.length; i++) sumSq += g[i]! * g[i]!;
  }
  return Math.sqrt(sumSq);
}

/**
 * The factor clip_grad_norm_ multiplies gradients with: min(1, max_norm / (norm + 1e-6)), in
 * float32 like torch (the norm is a float32 tensor and `max_norm / t` is `t.reciprocal() * max_norm`).
 */
export function clipCoefficient(norm: number, maxNorm: number): number {
  const f = Math.fround;
  const coef = f(f(1 / f(f(norm) + f(1e-6))) * f(maxNorm));
  return Math.min(1, coef);
}

/** True when any value is NaN or ±Infinity. */
export function hasNonFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) {
    // x - x is NaN exactly for NaN and ±Infinity; cheaper than Number.isFinite per element.
    if (values[i]! - values[i]! !== 0) return true;
  }
  return false;
}

export interface ClipOptions {
  /** Throw instead of returning a non-finite norm (torch's error_if_nonfinite). */
  errorIfNonfinite?: boolean;
}

/**
 * Clips `grads` in place to global L2 norm `maxNorm` and returns the norm before clipping.
 * A NaN / infinite norm leaves the gradients untouched and is returned (or thrown, with
 * errorIfNonfinite), so the caller can skip the step instead of poisoning the weights.
 */
export function clipGradNorm(
  grads: readonly Float32Array[],
  maxNorm: number,
  options: ClipOptions = {},
): number {
  if (!(maxNorm > 0)) throw new LoraforgeError(`max grad norm must be > 0, got ${maxNorm}`);
  const norm = globalGradNorm(grads);
  if (!Number.isFinite(norm)) {
    if (options.errorIfNonfinite) {
      throw new LoraforgeError(
        `gradient norm is ${norm}: the loss or gradients contain NaN or Inf`,
        'lower the learning rate, check the data for empty targets, or train in float32',
      );
    }
    return norm;
  }
  const coef = clipCoefficient(norm, maxNorm);
  if (coef < 1) {
    for (const g of grads) {
      for (let i = 0; i < g.length; i++) g[i] = Math.fround(g[i]! * coef);
    }
  }
  return norm;
}
