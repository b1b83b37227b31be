// gemm: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C (+ bias[n]), row-major, C f32; the
// native counterpart of the wasm gemm (GemmArgs in src/engine/cpu/runtime.ts is the contract).
// Arguments: m, n, k, a, lda, transA, aDtype, b, ldb, transB, bDtype, c, ldc, alpha, beta, bias,
// precision. dtype codes: 0 f32, 1 bf16, 2 f16. precision 0: exact (operands widened to f32, f32
// multiply-adds); 1: with B bf16, A may be rounded to bf16 and multiplied in bf16 pairs with f32
// sums (VDPBF16PS; variants without it compute exactly). beta 0 overwrites C without reading it.
// The kernel spreads its work over the pool itself: the launcher's range is ignored.
#include <cmath>

#include "../kernel.h"
#include "gemm.h"

namespace lf::gemm {
namespace {

/** C = beta * C + bias: the product term is absent (k = 0 or alpha = 0). */
void scaleOnly(const GemmCall& g) {
  parallelFor(g.m, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) {
      float* row = g.c + i * g.ldc;
      for (int64_t j = 0; j < g.n; j++)
        row[j] = (g.beta != 0 ? g.beta * row[j] : 0.0f) + (g.bias ? g.bias[j] : 0.0f);
    }
  });
}

GemmCall decode(const double* a) {
  GemmCall g;
  g.m = static_cast<int64_t>(a[0]);
  g.n = static_cast<int64_t>(a[1]);
  g.k = static_cast<int64_t>(a[2]);
  const size_t lda = static_cast<size_t>(a[4]), ldb = static_cast<size_t>(a[8]);
  const bool transA = a[5] != 0, transB = a[9] != 0;
  // op(A)[i, p]: A[i * lda + p], or A[p * lda + i] transposed.
  g.a = {ptr<const uint8_t>(a[3]), transA ? 1 : lda, transA ? lda : 1, static_cast<int>(a[6])};
  // op(B)[p, j]: B[p * ldb + j], or B[j * ldb + p] transposed.
  g.b = {ptr<const uint8_t>(a[7]), transB ? ldb : 1, transB ? 1 : ldb, static_cast<int>(a[10])};
  g.c = ptr<float>(a[11]);
  g.ldc = static_cast<size_t>(a[12]);
  g.alpha = static_cast<float>(a[13]);
  g.beta = static_cast<float>(a[14]);
  g.bias = ptr<const float>(a[15]);
#if defined(__AVX512BF16__)
  g.bf16Pairs = a[16] == 1 && g.b.dtype == kBf16;
#else
  g.bf16Pairs = false;
#endif
  return g;
}

}  // namespace
}  // namespace lf::gemm

LF_KERNEL(gemm, 17) {
  (void)start;
  (void)end;
  const lf::gemm::GemmCall g = lf::gemm::decode(a);
  if (g.m <= 0 || g.n <= 0) return NAN;
  if (g.k <= 0 || g.alpha == 0) lf::gemm::scaleOnly(g);
  else if (g.m <= lf::gemm::kStreamingMaxRows) lf::gemm::multiplyStreaming(g);
  else if (!lf::gemm::multiplyNarrow(g)) lf::gemm::multiplyBlocked(g);
  return NAN;
}
