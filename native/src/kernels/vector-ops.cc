// Flat kernels (src/engine/cpu/assembly/vector-ops.ts). Work items: elements.
#include "lib/simd.h"

#include <cmath>

#include "../kernel.h"
#include "lib/args.h"

LF_KERNEL(add, 4) {
  const float* x = lf::ptr<const float>(a[0]);
  const float* y = lf::ptr<const float>(a[1]);
  float* out = lf::ptr<float>(a[2]);
  for (int64_t i = start; i < end; i++) out[i] = x[i] + y[i];
  return NAN;
}

/**
 * y = alpha·x + beta·y (kernels/vector-ops.ts; the CPU backends' JavaScript loop, which the
 * native backend runs here instead): sums in double as that loop, so the results are the same
 * bit for bit; beta 0 never reads y. Native only: no wasm export has this name.
 */
LF_KERNEL(axpby, 5) {
  const float* x = lf::ptr<const float>(a[0]);
  float* y = lf::ptr<float>(a[1]);
  const double alpha = lf::argF32(a[3]), beta = lf::argF32(a[4]);
  if (beta == 0) {
    for (int64_t i = start; i < end; i++) y[i] = static_cast<float>(alpha * x[i]);
  } else {
    for (int64_t i = start; i < end; i++) y[i] = static_cast<float>(alpha * x[i] + beta * y[i]);
  }
  return NAN;
}

/**
 * LoRA dropout (engine/dropout.ts): out = x * keep, or 0 where the murmur3 finalizer of
 * seed·φ + i is below `threshold` (unsigned); the same mask as the wasm export, bit for bit.
 * out may be x.
 */
LF_KERNEL(dropoutApply, 6) {
  typedef uint32_t vu __attribute__((vector_size(LF_WIDTH * 4)));
  const float* x = lf::ptr<const float>(a[0]);
  float* out = lf::ptr<float>(a[1]);
  const uint32_t threshold = lf::argU32(a[3]);
  const float keep = lf::argF32(a[4]);
  const uint32_t base = lf::argU32(a[5]) * 0x9e3779b1u;
  vu lane;
  for (int i = 0; i < lf::kWidth; i++) lane[i] = i;
  lf::forVectors(start, end, [&](int64_t i, auto lanes) {
    vu h = lane + (base + static_cast<uint32_t>(i));
    h = (h ^ (h >> 16)) * 0x85ebca6bu;
    h = (h ^ (h >> 13)) * 0xc2b2ae35u;
    h ^= h >> 16;
    lanes.store(out + i, lf::clearWhere(lanes.load(x + i) * keep, h < threshold));
  });
  return NAN;
}
