// exp, log and sin / cos as the wasm kernels compute them (src/engine/cpu/assembly/lib/math.ts),
// step for step, so that a native kernel matches its wasm export lane for lane: libm's versions
// round differently.
#pragma once
#include <cmath>

#include "simd.h"

namespace lf {
namespace {

constexpr float kLog2e = 1.44269504f;
// ln 2 split so that k * kLn2Hi is exact for the |k| <= 128 of f32 exponents.
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
// 1.5 * 2^23: adding it rounds to the nearest integer, which then sits in the low mantissa bits.
constexpr float kRoundMagic = 12582912.0f;

/**
 * exp per lane (about 1 ulp): 2^k * exp(r), |r| <= ln2/2, exp(r) by its degree-7 Taylor
 * polynomial; saturates at exp(88), exactly 0 below -87.3 (and for -inf), NaN stays NaN.
 */
template <class V>
inline V expv(V x) {
  const V clamped = pmax(pmin(x, splat<V>(88)), splat<V>(-88));
  const V shifted = madd(clamped, splat<V>(kLog2e), splat<V>(kRoundMagic));
  const V k = shifted - splat<V>(kRoundMagic);
  const V r = madd(k, splat<V>(-kLn2Lo), madd(k, splat<V>(-kLn2Hi), clamped));
  V poly = splat<V>(static_cast<float>(1.0 / 5040));
  poly = madd(poly, r, splat<V>(static_cast<float>(1.0 / 720)));
  poly = madd(poly, r, splat<V>(static_cast<float>(1.0 / 120)));
  poly = madd(poly, r, splat<V>(static_cast<float>(1.0 / 24)));
  poly = madd(poly, r, splat<V>(static_cast<float>(1.0 / 6)));
  poly = madd(poly, r, splat<V>(0.5f));
  poly = madd(poly, r, splat<V>(1));
  poly = madd(poly, r, splat<V>(1));
  // The low mantissa bits of `shifted` hold k (two's complement): k + 127 in the exponent is 2^k.
  using Ints = IntsOf<V>;
  const V twoToK = reinterpret_cast<V>((reinterpret_cast<Ints>(shifted) + 127) << 23);
  return clearWhere(poly * twoToK, x < splat<V>(-87.3f));
}

/** expv of one value (lane 0 of a splat, as the wasm kernels' expf). */
inline float expScalar(float x) { return expv(splat<v4>(x))[0]; }

/** 1 / (1 + exp(-x)) per lane. */
template <class V>
inline V sigmoidv(V x) {
  return splat<V>(1) / (splat<V>(1) + expv(-x));
}

/** Natural log of a positive normal double: x = 2^e * m, m in [1/sqrt2, sqrt2), ln m = 2 atanh(s). */
inline double lnF64(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  const uint64_t mantissaBits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
  double m;
  std::memcpy(&m, &mantissaBits, sizeof m);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e++;
  }
  const double s = (m - 1) / (m + 1);  // |s| < 0.172: 12 terms of the odd series reach f64
  const double s2 = s * s;
  double series = 1.0 / 23;
  for (int n = 21; n >= 1; n -= 2) series = series * s2 + 1.0 / n;
  return 2 * s * series + e * 0.6931471805599453;
}

/** Taylor series of sin(r) / r for |r| <= pi/4 (z = r^2), through r^18. */
inline double sinOverR(double z) {
  double t = 1.0 / 121645100408832000;  // 1 / 19!
  t = t * -z + 1.0 / 355687428096000;   // 17!
  t = t * -z + 1.0 / 1307674368000;     // 15!
  t = t * -z + 1.0 / 6227020800;        // 13!
  t = t * -z + 1.0 / 39916800;          // 11!
  t = t * -z + 1.0 / 362880;            // 9!
  t = t * -z + 1.0 / 5040;              // 7!
  t = t * -z + 1.0 / 120;               // 5!
  t = t * -z + 1.0 / 6;                 // 3!
  return t * -z + 1;
}

/** Taylor series of cos(r) for |r| <= pi/4 (z = r^2), through r^20. */
inline double cosTaylor(double z) {
  double t = 1.0 / 2432902008176640000;  // 1 / 20!
  t = t * -z + 1.0 / 6402373705728000;   // 18!
  t = t * -z + 1.0 / 20922789888000;     // 16!
  t = t * -z + 1.0 / 87178291200;        // 14!
  t = t * -z + 1.0 / 479001600;          // 12!
  t = t * -z + 1.0 / 3628800;            // 10!
  t = t * -z + 1.0 / 40320;              // 8!
  t = t * -z + 1.0 / 720;                // 6!
  t = t * -z + 1.0 / 24;                 // 4!
  t = t * -z + 1.0 / 2;                  // 2!
  return t * -z + 1;
}

struct SinCos {
  double sin, cos;
};

/**
 * sin and cos of |angle| < 1.6e6: angle = k * pi/2 + r, |r| <= pi/4 (pi/2 in three 33-bit
 * pieces, so k * piece is exact), then the quadrant k mod 4 picks and signs (sin r, cos r).
 */
inline SinCos sinCos(double angle) {
  const double k = std::nearbyint(angle * 0.6366197723675814);  // ties to even, as f64.nearest
  const double r =
      angle - k * 1.57079632673412561417 - k * 6.07710050630396597660e-11 -
      k * 2.02226624871116645580e-21;
  const double z = r * r;
  const double s = r * sinOverR(z);
  const double c = cosTaylor(z);
  switch (static_cast<int>(k) & 3) {
    case 0: return {s, c};
    case 1: return {c, -s};
    case 2: return {-s, -c};
    default: return {-c, s};
  }
}

}  // namespace
}  // namespace lf
