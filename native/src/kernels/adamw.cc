// AdamW (src/engine/cpu/assembly/adamw.ts). Work items: elements.
#include "lib/no-contract.h"

#include <cmath>

#include "../kernel.h"
#include "lib/args.h"

/**
 * PyTorch's AdamW step, every scalar computed by the host: separate multiplies and adds in
 * PyTorch's order (no fused multiply-add), so the result matches the reference bit for bit.
 */
LF_KERNEL(adamwStep, 13) {
  float* p = lf::ptr<float>(a[0]);
  const float* g = lf::ptr<const float>(a[1]);
  float* m = lf::ptr<float>(a[2]);
  float* v = lf::ptr<float>(a[3]);
  const float decay = lf::argF32(a[5]), beta1 = lf::argF32(a[6]),
              oneMinusBeta1 = lf::argF32(a[7]), beta2 = lf::argF32(a[8]),
              oneMinusBeta2 = lf::argF32(a[9]), stepSize = lf::argF32(a[10]),
              bc2Sqrt = lf::argF32(a[11]), eps = lf::argF32(a[12]);
  for (int64_t i = start; i < end; i++) {
    const float gi = g[i];
    const float mi = m[i] * beta1 + oneMinusBeta1 * gi;
    const float vi = v[i] * beta2 + oneMinusBeta2 * gi * gi;
    const float denominator = std::sqrt(vi) / bc2Sqrt + eps;
    p[i] = p[i] * decay - stepSize * mi / denominator;
    m[i] = mi;
    v[i] = vi;
  }
  return NAN;
}
