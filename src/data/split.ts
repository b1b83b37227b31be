import { LoraforgeError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';

export const DEFAULT_VAL_SIZE = 0.1;

/**
 * Seeded train/validation split of `n` items, by index. `valSize` in (0, 1) is a fraction
 * (rounded to the nearest count), an integer >= 1 an absolute count, 0 no validation set.
 *
 * Algorithm: Fisher–Yates shuffle of 0..n-1 driven by Rng(seed); the first k shuffled
 * indices form the validation set. Both sets are returned in file order.
 */
export function splitIndices(
  n: number,
  valSize: number,
  seed: number,
): { train: number[]; validation: number[] } {
  const k = validationCount(n, valSize);
  const order = new Rng(seed).permutation(n);
  const byIndex = (a: number, b: number) => a - b;
  return { train: order.slice(k).sort(byIndex), validation: order.slice(0, k).sort(byIndex) };
}

function validationCount(n: number, valSize: number): number {
  if (!Number.isFinite(valSize) || valSize < 0 || (valSize >= 1 && !Number.isInteger(valSize))) {
    throw new LoraforgeError(
      `val_size ${valSize}: expected a fraction in [0, 1) or a whole number of examples`,
    );
  }
  const k = valSize < 1 ? Math.round(n * valSize) : valSize;
  if (k >= n && n > 0) {
    throw new LoraforgeError(
      `val_size ${valSize} leaves no training examples out of ${n}`,
      'use a smaller val_size',
    );
  }
  return k;
}
