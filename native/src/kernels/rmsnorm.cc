// RMSNorm forward and backward (src/engine/cpu/assembly/rmsnorm.ts).
#include "lib/simd.h"

#include <cmath>

#include "../kernel.h"
#include "lib/args.h"
#include "lib/rows.h"

using lf::madd;
using lf::splat;
using lf::vf;

/**
 * out = x * rstd * w per row, rstd = 1 / sqrt(mean(x^2) + eps) (saved unless rstd is 0).
 * Work items: rows.
 */
LF_KERNEL(rmsnormForward, 7) {
  const float* x = lf::ptr<const float>(a[0]);
  const float* w = lf::ptr<const float>(a[1]);
  float* out = lf::ptr<float>(a[2]);
  float* rstd = lf::ptr<float>(a[3]);
  const int dim = lf::argI32(a[5]);
  const float eps = lf::argF32(a[6]);
  for (int64_t r = start; r < end; r++) {
    const float* xRow = x + r * dim;
    float* oRow = out + r * dim;
    const float rowRstd = 1 / std::sqrt(lf::dot(xRow, xRow, dim) / static_cast<float>(dim) + eps);
    if (rstd) rstd[r] = rowRstd;
    const vf rv = splat<vf>(rowRstd);
    lf::forVectors(0, dim, [&](int64_t c, auto lanes) {
      lanes.store(oRow + c, lanes.load(xRow + c) * rv * lanes.load(w + c));
    });
  }
  return NAN;
}

/**
 * Input half of the backward: dx = rstd * (w*dout - x * rstd^2 * mean(w*dout*x)), overwritten
 * (dx may be dout). Work items: rows.
 */
LF_KERNEL(rmsnormBackwardInput, 7) {
  const float* x = lf::ptr<const float>(a[0]);
  const float* w = lf::ptr<const float>(a[1]);
  const float* rstd = lf::ptr<const float>(a[2]);
  const float* dout = lf::ptr<const float>(a[3]);
  float* dx = lf::ptr<float>(a[4]);
  const int dim = lf::argI32(a[6]);
  for (int64_t r = start; r < end; r++) {
    const float* xRow = x + r * dim;
    const float* gRow = dout + r * dim;
    float* dxRow = dx + r * dim;
    const float rs = rstd[r];
    vf acc = {};
    lf::forVectors(0, dim, [&](int64_t c, auto lanes) {
      acc = madd(lanes.load(w + c) * lanes.load(gRow + c), lanes.load(xRow + c), acc);
    });
    const vf coef = splat<vf>(rs * rs * lf::hsum(acc) / static_cast<float>(dim));
    const vf rv = splat<vf>(rs);
    lf::forVectors(0, dim, [&](int64_t c, auto lanes) {
      const vf wg = lanes.load(w + c) * lanes.load(gRow + c);
      lanes.store(dxRow + c, rv * (wg - lanes.load(xRow + c) * coef));
    });
  }
  return NAN;
}

/**
 * Weight half of the backward: dw[c] += sum over rows of dout*x*rstd. Work items are columns, so
 * parallel jobs own disjoint slices of dw.
 */
LF_KERNEL(rmsnormBackwardWeight, 6) {
  const float* x = lf::ptr<const float>(a[0]);
  const float* rstd = lf::ptr<const float>(a[1]);
  const float* dout = lf::ptr<const float>(a[2]);
  float* dw = lf::ptr<float>(a[3]);
  const int rows = lf::argI32(a[4]);
  const int64_t dim = lf::argI32(a[5]);
  lf::forVectors(start, end, [&](int64_t c, auto lanes) {
    vf acc = lanes.load(dw + c);
    for (int64_t r = 0; r < rows; r++) {
      const vf gx = lanes.load(dout + r * dim + c) * lanes.load(x + r * dim + c);
      acc = madd(gx, splat<vf>(rstd[r]), acc);
    }
    lanes.store(dw + c, acc);
  });
  return NAN;
}
