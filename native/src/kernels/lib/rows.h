// Dot products and row updates over f32 rows, shared by attention, RMSNorm and cross-entropy (the
// native side of src/engine/cpu/assembly/lib/rows.ts), at this build's full vector width.
#pragma once
#include <cstring>

#include "simd.h"

namespace lf {
namespace {

/** [x.a, x.b, x.c, x.d] for rows of length n. */
inline v4 dot4(const float* x, const float* a, const float* b, const float* c, const float* d,
               int n) {
  vf sa = {}, sb = {}, sc = {}, sd = {};
  forVectors(0, n, [&](int64_t i, auto lanes) {
    const vf xv = lanes.load(x + i);
    sa = madd(xv, lanes.load(a + i), sa);
    sb = madd(xv, lanes.load(b + i), sb);
    sc = madd(xv, lanes.load(c + i), sc);
    sd = madd(xv, lanes.load(d + i), sd);
  });
  return hsum4(fold4(sa), fold4(sb), fold4(sc), fold4(sd));
}

inline float dot(const float* x, const float* y, int n) {
  vf acc = {};
  forVectors(0, n, [&](int64_t i, auto lanes) {
    acc = madd(lanes.load(x + i), lanes.load(y + i), acc);
  });
  return hsum(acc);
}

/** acc += w[0] * a + w[1] * b + w[2] * c + w[3] * d over rows of length n. */
inline void accumulate4(float* acc, v4 w, const float* a, const float* b, const float* c,
                        const float* d, int n) {
  const vf wa = splat<vf>(w[0]), wb = splat<vf>(w[1]), wc = splat<vf>(w[2]),
           wd = splat<vf>(w[3]);
  forVectors(0, n, [&](int64_t i, auto lanes) {
    vf sum = madd(wa, lanes.load(a + i), lanes.load(acc + i));
    sum = madd(wb, lanes.load(b + i), sum);
    sum = madd(wc, lanes.load(c + i), sum);
    sum = madd(wd, lanes.load(d + i), sum);
    lanes.store(acc + i, sum);
  });
}

/** y += alpha * x over n floats. */
inline void axpyRow(float* y, float alpha, const float* x, int n) {
  const vf av = splat<vf>(alpha);
  forVectors(0, n, [&](int64_t i, auto lanes) {
    lanes.store(y + i, madd(av, lanes.load(x + i), lanes.load(y + i)));
  });
}

/** y *= alpha over n floats. */
inline void scaleInPlace(float* y, float alpha, int n) {
  const vf av = splat<vf>(alpha);
  forVectors(0, n, [&](int64_t i, auto lanes) { lanes.store(y + i, av * lanes.load(y + i)); });
}

inline void fillZero(float* y, int64_t n) { std::memset(y, 0, static_cast<size_t>(n) * 4); }

}  // namespace
}  // namespace lf
