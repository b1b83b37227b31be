// Dot products and row updates over f32 rows, shared by attention, RMSNorm and cross-entropy.
import { at, hsum, hsum4, lanes, madd, splat } from './simd';

/** [x.a, x.b, x.c, x.d] for rows of length D. */
export function dot4(x: usize, a: usize, b: usize, c: usize, d: usize, D: i32): v128 {
  let sa = splat(0);
  let sb = splat(0);
  let sc = splat(0);
  let sd = splat(0);
  let i = 0;
  for (; i + 4 <= D; i += 4) {
    const offset = <usize>i << 2;
    const xv = v128.load(x + offset);
    sa = madd(xv, v128.load(a + offset), sa);
    sb = madd(xv, v128.load(b + offset), sb);
    sc = madd(xv, v128.load(c + offset), sc);
    sd = madd(xv, v128.load(d + offset), sd);
  }
  let sums = hsum4(sa, sb, sc, sd);
  for (; i < D; i++) {
    const xs = load<f32>(at(x, i));
    const tail = lanes(xs * load<f32>(at(a, i)), xs * load<f32>(at(b, i)), xs * load<f32>(at(c, i)), xs * load<f32>(at(d, i)));
    sums = f32x4.add(sums, tail);
  }
  return sums;
}

export function dot(x: usize, y: usize, n: i32): f32 {
  let acc = splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = madd(v128.load(at(x, i)), v128.load(at(y, i)), acc);
  let sum = hsum(acc);
  for (; i < n; i++) sum += load<f32>(at(x, i)) * load<f32>(at(y, i));
  return sum;
}

/** acc += w[0] * a + w[1] * b + w[2] * c + w[3] * d over rows of length D. */
export function accumulate4(acc: usize, w: v128, a: usize, b: usize, c: usize, d: usize, D: i32): void {
  const wa = f32x4.splat(f32x4.extract_lane(w, 0));
  const wb = f32x4.splat(f32x4.extract_lane(w, 1));
  const wc = f32x4.splat(f32x4.extract_lane(w, 2));
  const wd = f32x4.splat(f32x4.extract_lane(w, 3));
  let i = 0;
  for (; i + 4 <= D; i += 4) {
    const offset = <usize>i << 2;
    let sum = madd(wa, v128.load(a + offset), v128.load(acc + offset));
    sum = madd(wb, v128.load(b + offset), sum);
    sum = madd(wc, v128.load(c + offset), sum);
    sum = madd(wd, v128.load(d + offset), sum);
    v128.store(acc + offset, sum);
  }
  for (; i < D; i++) {
    const sum =
      load<f32>(at(acc, i)) +
      f32x4.extract_lane(wa, 0) * load<f32>(at(a, i)) +
      f32x4.extract_lane(wb, 0) * load<f32>(at(b, i)) +
      f32x4.extract_lane(wc, 0) * load<f32>(at(c, i)) +
      f32x4.extract_lane(wd, 0) * load<f32>(at(d, i));
    store<f32>(at(acc, i), sum);
  }
}

/** y += alpha * x over n floats. */
export function axpyRow(y: usize, alpha: f32, x: usize, n: i32): void {
  const av = splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(y, i), madd(av, v128.load(at(x, i)), v128.load(at(y, i))));
  for (; i < n; i++) store<f32>(at(y, i), load<f32>(at(y, i)) + alpha * load<f32>(at(x, i)));
}

export function fillZero(y: usize, n: i32): void {
  memory.fill(y, 0, <usize>n << 2);
}

/** y *= alpha over n floats. */
export function scaleInPlace(y: usize, alpha: f32, n: i32): void {
  const av = splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(y, i), f32x4.mul(av, v128.load(at(y, i))));
  for (; i < n; i++) store<f32>(at(y, i), alpha * load<f32>(at(y, i)));
}
