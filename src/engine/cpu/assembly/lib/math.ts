// Math without tables: AssemblyScript's Math uses lookup tables (data segments), which kernels
// must not have, so exp / log / sin / cos are written here.
import { at, splat, madd } from './simd';

const LOG2E: f32 = 1.44269504;
// ln 2 split so that k * LN2_HI is exact for the |k| <= 128 of f32 exponents.
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
// 1.5 * 2^23: adding it rounds to the nearest integer, which then sits in the low mantissa bits.
const ROUND_MAGIC: f32 = 12582912;

/**
 * exp per lane, to about 1 ulp: exp(x) = 2^k * exp(r), |r| <= ln2/2, exp(r) by its degree-7
 * Taylor polynomial. Saturates at exp(88); below -87.3 (and for -inf) it is exactly 0; NaN stays
 * NaN. pmin / pmax and the magic-number rounding are single x86 instructions, where min / max /
 * nearest / trunc_sat need NaN fix-up sequences.
 */
export function expv(x: v128): v128 {
  const clamped = f32x4.pmax(f32x4.pmin(x, splat(88)), splat(-88));
  const shifted = madd(clamped, splat(LOG2E), splat(ROUND_MAGIC));
  const k = f32x4.sub(shifted, splat(ROUND_MAGIC));
  const r = madd(k, splat(-LN2_LO), madd(k, splat(-LN2_HI), clamped));
  let poly = splat(1.0 / 5040);
  poly = madd(poly, r, splat(1.0 / 720));
  poly = madd(poly, r, splat(1.0 / 120));
  poly = madd(poly, r, splat(1.0 / 24));
  poly = madd(poly, r, splat(1.0 / 6));
  poly = madd(poly, r, splat(0.5));
  poly = madd(poly, r, splat(1));
  poly = madd(poly, r, splat(1));
  // The low mantissa bits of `shifted` hold k (two's complement): k + 127 moved into the exponent field is 2^k.
  const twoToK = i32x4.shl(i32x4.add(shifted, i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(poly, twoToK), f32x4.lt(x, splat(-87.3)));
}

@inline export function expf(x: f32): f32 {
  return f32x4.extract_lane(expv(splat(x)), 0);
}

/** 1 / (1 + exp(-x)) per lane. */
@inline export function sigmoidv(x: v128): v128 {
  return f32x4.div(splat(1), f32x4.add(splat(1), expv(f32x4.neg(x))));
}

const LN2_F64: f64 = 0.6931471805599453;
const SQRT2_F64: f64 = 1.4142135623730951;

/** Natural log of a positive normal f64: x = 2^e * m, m in [1/sqrt2, sqrt2), ln m = 2 atanh(s). */
export function lnF64(x: f64): f64 {
  const bits = reinterpret<u64>(x);
  let e = <i32>((bits >> 52) & 0x7ff) - 1023;
  let m = reinterpret<f64>((bits & 0x000fffffffffffff) | 0x3ff0000000000000);
  if (m > SQRT2_F64) {
    m *= 0.5;
    e++;
  }
  const s = (m - 1) / (m + 1); // |s| < 0.172, so 12 terms of the odd series reach f64 precision
  const s2 = s * s;
  let series: f64 = 1.0 / 23;
  for (let n = 21; n >= 1; n -= 2) series = series * s2 + 1.0 / <f64>n;
  return 2 * s * series + <f64>e * LN2_F64;
}

// pi/2 in three 33-bit pieces: k * piece is exact for the |k| < 2^20 of any RoPE angle.
const PIO2_1: f64 = 1.57079632673412561417;
const PIO2_2: f64 = 6.07710050630396597660e-11;
const PIO2_3: f64 = 2.02226624871116645580e-21;
const TWO_OVER_PI: f64 = 0.6366197723675814;

/** Taylor series of sin(r) / r for |r| <= pi/4, through r^18 (error below 1e-19). */
export function sinOverR(z: f64): f64 {
  let t: f64 = 1.0 / 121645100408832000; // 1 / 19!
  t = t * -z + 1.0 / 355687428096000; // 17!
  t = t * -z + 1.0 / 1307674368000; // 15!
  t = t * -z + 1.0 / 6227020800; // 13!
  t = t * -z + 1.0 / 39916800; // 11!
  t = t * -z + 1.0 / 362880; // 9!
  t = t * -z + 1.0 / 5040; // 7!
  t = t * -z + 1.0 / 120; // 5!
  t = t * -z + 1.0 / 6; // 3!
  return t * -z + 1;
}

/** Taylor series of cos(r) for |r| <= pi/4, through r^20 (error below 1e-20). */
export function cosTaylor(z: f64): f64 {
  let t: f64 = 1.0 / 2432902008176640000; // 1 / 20!
  t = t * -z + 1.0 / 6402373705728000; // 18!
  t = t * -z + 1.0 / 20922789888000; // 16!
  t = t * -z + 1.0 / 87178291200; // 14!
  t = t * -z + 1.0 / 479001600; // 12!
  t = t * -z + 1.0 / 3628800; // 10!
  t = t * -z + 1.0 / 40320; // 8!
  t = t * -z + 1.0 / 720; // 6!
  t = t * -z + 1.0 / 24; // 4!
  t = t * -z + 1.0 / 2; // 2!
  return t * -z + 1;
}

/**
 * [sin(angle), cos(angle)] as f64x2, for |angle| < 1.6e6: angle = k * pi/2 + r, |r| <= pi/4, then
 * the quadrant k mod 4 picks and signs the pair (sin r, cos r).
 */
export function sinCos(angle: f64): v128 {
  const k = nearest<f64>(angle * TWO_OVER_PI);
  const r = angle - k * PIO2_1 - k * PIO2_2 - k * PIO2_3;
  const z = r * r;
  const s = r * sinOverR(z);
  const c = cosTaylor(z);
  const quadrant = <i32>k & 3;
  const sin = quadrant == 0 ? s : quadrant == 1 ? c : quadrant == 2 ? -s : -c;
  const cos = quadrant == 0 ? c : quadrant == 1 ? -s : quadrant == 2 ? -c : s;
  return f64x2.replace_lane(f64x2.splat(sin), 1, cos);
}
