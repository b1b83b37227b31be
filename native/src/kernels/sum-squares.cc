// The sum of squares of a gradient (src/engine/cpu/assembly/sum-squares.ts).
#include "lib/simd.h"

#include "../kernel.h"

namespace {
typedef double vd __attribute__((vector_size(LF_WIDTH * 8)));
}

/**
 * Sum of x^2 accumulated in f64 (gradient-norm clipping over many millions of values), one lane
 * per float of a vector. Like the wasm export it takes no work range: it runs whole on the calling
 * thread, and the range passed to it is ignored.
 */
LF_KERNEL(sumSquares, 2) {
  (void)start;
  (void)end;
  const float* x = lf::ptr<const float>(a[0]);
  const int64_t n = static_cast<int64_t>(a[1]);
  vd acc = {};
  lf::forVectors(0, n, [&](int64_t i, auto lanes) {
    const vd wide = __builtin_convertvector(lanes.load(x + i), vd);
    acc += wide * wide;
  });
  double sum = 0;
  for (int i = 0; i < lf::kWidth; i++) sum += acc[i];
  return sum;
}
