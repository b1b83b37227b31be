// gemm: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C (+ bias[n]), row-major, C f32; the
// native counterpart of the wasm gemm (src/engine/cpu/runtime.ts GemmArgs holds the contract).
// Arguments: m, n, k, a, lda, transA, aDtype, b, ldb, transB, bDtype, c, ldc, alpha, beta, bias,
// precision. dtype codes: 0 f32, 1 bf16, 2 f16. precision 0: exact (f32 products, f32 sums);
// 1: B bf16 may be multiplied with A rounded to bf16 (VDPBF16PS where the variant has it).
// The kernel spreads its own work over the pool; the launcher's range is ignored.
#include <cmath>
#include <cstring>
#include <vector>

#include "../kernel.h"

namespace {

constexpr int kF32 = 0, kBf16 = 1;

float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t magnitude = h & 0x7fff;
  uint32_t bits;
  if (magnitude >= 0x7c00) {
    bits = sign | 0x7f800000 | (magnitude & 0x3ff) << 13;  // infinity / NaN
  } else {
    // As f32 bits, magnitude << 13 is the value scaled by 2^-112 (exact, subnormals included).
    float scaled;
    const uint32_t shifted = magnitude << 13;
    std::memcpy(&scaled, &shifted, 4);
    scaled *= 0x1p112f;
    std::memcpy(&bits, &scaled, 4);
    bits |= sign;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

float widen(const void* base, size_t index, int dtype) {
  if (dtype == kF32) return static_cast<const float*>(base)[index];
  const uint16_t h = static_cast<const uint16_t*>(base)[index];
  if (dtype == kBf16) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
  }
  return halfToFloat(h);
}

/** x rounded to the nearest bf16 (ties to even), as f32. */
float roundToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffff) <= 0x7f800000) bits += 0x7fff + ((bits >> 16) & 1);  // NaN kept
  bits &= 0xffff0000;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

}  // namespace

LF_KERNEL(gemm, 17) {
  (void)start;
  (void)end;
  const int64_t m = static_cast<int64_t>(a[0]), n = static_cast<int64_t>(a[1]),
                k = static_cast<int64_t>(a[2]);
  const void* A = lf::ptr<const void>(a[3]);
  const size_t lda = static_cast<size_t>(a[4]);
  const bool transA = a[5] != 0;
  const int aDtype = static_cast<int>(a[6]);
  const void* B = lf::ptr<const void>(a[7]);
  const size_t ldb = static_cast<size_t>(a[8]);
  const bool transB = a[9] != 0;
  const int bDtype = static_cast<int>(a[10]);
  float* C = lf::ptr<float>(a[11]);
  const size_t ldc = static_cast<size_t>(a[12]);
  const float alpha = static_cast<float>(a[13]), beta = static_cast<float>(a[14]);
  const float* bias = lf::ptr<const float>(a[15]);
#if defined(__AVX512BF16__)
  const bool roundA = a[16] == 1 && bDtype == kBf16;
#else
  const bool roundA = false;
#endif
  if (m <= 0 || n <= 0) return NAN;
  lf::parallelFor(m, [&](int64_t i0, int64_t i1) {
    std::vector<float> row(static_cast<size_t>(k)), acc(static_cast<size_t>(n));
    for (int64_t i = i0; i < i1; i++) {
      for (int64_t p = 0; p < k; p++) {
        const float x = widen(A, transA ? p * lda + i : i * lda + p, aDtype);
        row[p] = roundA ? roundToBf16(x) : x;
      }
      for (int64_t j = 0; j < n; j++) {
        float sum = 0;
        for (int64_t p = 0; p < k; p++)
          sum = std::fma(row[p], widen(B, transB ? j * ldb + p : p * ldb + j, bDtype), sum);
        acc[j] = sum;
      }
      float* out = C + i * ldc;
      for (int64_t j = 0; j < n; j++) {
        float value = alpha == 0 ? 0.0f : alpha * acc[j];  // no product term, as wasm
        if (beta != 0) value += beta * out[j];
        if (bias) value += bias[j];
        out[j] = value;
      }
    }
  });
  return NAN;
}
