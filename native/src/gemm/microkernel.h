// Register-tiled micro-kernels: one packed A panel (MR rows) times one packed B panel (NR
// columns) over a block of k, summed in registers and written to an MR x NR tile; storeTile then
// merges the tile into C. The loops over rows and vectors have constant bounds and are unrolled,
// so the accumulators live in registers.
#pragma once
#include "gemm.h"
#include "simd.h"

namespace lf::gemm {

/** tile[MR][NV * W] = sum over kc steps of ap[step][MR] (outer) bp[step][NV * W]. */
template <int MR, int NV>
inline void multiplyPanels(int kc, const float* __restrict ap, const float* __restrict bp,
                           float* __restrict tile) {
  constexpr int W = Simd::W, NR = NV * W;
  Simd::V acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = Simd::zero();
  for (int p = 0; p < kc; p++, ap += MR, bp += NR) {
    Simd::V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = Simd::load(bp + v * W);
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++) {
      const Simd::V a = Simd::splat(ap[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = Simd::fma(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) Simd::store(tile + r * NR + v * W, acc[r][v]);
}

#if defined(__AVX512BF16__)
/**
 * As multiplyPanels on bf16 pair panels (32 columns: two zmm): each VDPBF16PS adds the products
 * of two consecutive k steps of 16 columns to f32 accumulators.
 */
template <int MR>
inline void multiplyPairPanels(int pairs, const uint32_t* __restrict ap,
                               const uint32_t* __restrict bp, float* __restrict tile) {
  __m512 acc[MR][2];
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int p = 0; p < pairs; p++, ap += MR, bp += 32) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
#pragma GCC unroll 32
    for (int r = 0; r < MR; r++) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; r++) {
    _mm512_storeu_ps(tile + r * 32, acc[r][0]);
    _mm512_storeu_ps(tile + r * 32 + 16, acc[r][1]);
  }
}
#endif

/** How a tile's sums reach C: the first k block applies beta and bias, later ones add on. */
struct Epilogue {
  float alpha, beta;
  const float* bias;  // at the tile's first column, or null
  bool accumulate;
};

/** C[rows][cols] (ldc apart) from tile[.][nr] per the epilogue. */
inline void storeTile(const float* tile, int nr, float* c, size_t ldc, int rows, int cols,
                      const Epilogue& e) {
  constexpr int W = Simd::W;
  const Simd::V alpha = Simd::splat(e.alpha), beta = Simd::splat(e.beta);
  for (int r = 0; r < rows; r++, tile += nr, c += ldc) {
    int j = 0;
    for (; j + W <= cols; j += W) {
      Simd::V v = Simd::mul(alpha, Simd::load(tile + j));
      if (e.accumulate) {
        v = Simd::add(v, Simd::load(c + j));
      } else {
        if (e.beta != 0) v = Simd::fma(beta, Simd::load(c + j), v);
        if (e.bias) v = Simd::add(v, Simd::load(e.bias + j));
      }
      Simd::store(c + j, v);
    }
    for (; j < cols; j++) {
      float v = e.alpha * tile[j];
      if (e.accumulate) {
        v += c[j];
      } else {
        if (e.beta != 0) v += e.beta * c[j];
        if (e.bias) v += e.bias[j];
      }
      c[j] = v;
    }
  }
}

}  // namespace lf::gemm
