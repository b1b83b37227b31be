// The sum of squares of a gradient (src/engine/kernels/sum-squares.ts).
import { at, splat } from './lib/simd';

/** Sum of x^2 accumulated in f64 (gradient-norm clipping over many millions of values). */
export function sumSquares(x: usize, n: i32): f64 {
  let even = f64x2.splat(0);
  let odd = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const xv = v128.load(at(x, i));
    const low = f64x2.promote_low_f32x4(xv);
    const high = f64x2.promote_low_f32x4(i32x4.shuffle(xv, xv, 2, 3, 0, 1));
    even = f64x2.add(even, f64x2.mul(low, low));
    odd = f64x2.add(odd, f64x2.mul(high, high));
  }
  const both = f64x2.add(even, odd);
  let sum = f64x2.extract_lane(both, 0) + f64x2.extract_lane(both, 1);
  for (; i < n; i++) {
    const value = <f64>load<f32>(at(x, i));
    sum += value * value;
  }
  return sum;
}
