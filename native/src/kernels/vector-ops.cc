// add: out[i] = a[i] + b[i] (the wasm export `add` of assembly/vector-ops.ts).
#include <cmath>

#include "../kernel.h"

LF_KERNEL(add, 4) {
  const float* x = lf::ptr<const float>(a[0]);
  const float* y = lf::ptr<const float>(a[1]);
  float* out = lf::ptr<float>(a[2]);
  for (int64_t i = start; i < end; i++) out[i] = x[i] + y[i];
  return NAN;
}
