// The product for a few rows of op(A) (decoding: m = 1): packing B would move more memory than
// the product reads, so B is streamed once, its columns split over the threads. B transposed
// (weights [out, in]): one dot product of each B row with each A row. B plain ([k, n]): sweeps
// over B's rows accumulating a few vectors of columns.
#include <algorithm>

#include "../kernel.h"
#include "gemm.h"
#include "scratch.h"
#include "simd.h"

namespace lf::gemm {
namespace {

constexpr int W = Simd::W;
/** Columns of one sweep (plain B): four vectors per A row, in registers. */
constexpr int kSweepColumns = 4 * W;

// A's rows, widened or rounded once per call; calls come one at a time from the JavaScript thread.
Scratch& rowsScratch() {
  static Scratch scratch;
  return scratch;
}

/** Dot products of rows [j0, j1) of B (transposed) with the M rows of a (f32, k apart). */
template <int M, int Dtype>
void dotRows(const GemmCall& g, const float* a, int64_t j0, int64_t j1) {
  const int64_t k = g.k;
  const size_t bytes = StridedView::dtypeBytes(Dtype);
  for (int64_t j = j0; j < j1; j++) {
    const uint8_t* b = g.b.at(j, 0);
    Simd::V acc[M][2];
    for (int i = 0; i < M; i++) acc[i][0] = acc[i][1] = Simd::zero();
    int64_t p = 0;
    // Two chains per row hide the multiply-add latency.
    for (; p + 2 * W <= k; p += 2 * W) {
      const Simd::V b0 = loadWidened(b + p * bytes, Dtype);
      const Simd::V b1 = loadWidened(b + (p + W) * bytes, Dtype);
#pragma GCC unroll 4
      for (int i = 0; i < M; i++) {
        acc[i][0] = Simd::fma(Simd::load(a + i * k + p), b0, acc[i][0]);
        acc[i][1] = Simd::fma(Simd::load(a + i * k + p + W), b1, acc[i][1]);
      }
    }
    for (int i = 0; i < M; i++) {
      float sum = Simd::sum(Simd::add(acc[i][0], acc[i][1]));
      for (int64_t q = p; q < k; q++) sum += a[i * k + q] * widen(b, q, Dtype);
      storeOne(g, i, j, sum);
    }
  }
}

/** Columns [j0, j1) of C for the M rows of a (f32, k apart), B plain. */
template <int M, int Dtype>
void sweepColumns(const GemmCall& g, const float* a, int64_t j0, int64_t j1) {
  const int64_t k = g.k;
  const size_t bytes = StridedView::dtypeBytes(Dtype);
  int64_t j = j0;
  for (; j + kSweepColumns <= j1; j += kSweepColumns) {
    Simd::V acc[M][4];
    for (int i = 0; i < M; i++)
      for (int v = 0; v < 4; v++) acc[i][v] = Simd::zero();
    for (int64_t p = 0; p < k; p++) {
      const uint8_t* b = g.b.at(j, p);
      Simd::V bv[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) bv[v] = loadWidened(b + v * W * bytes, Dtype);
#pragma GCC unroll 4
      for (int i = 0; i < M; i++) {
        const Simd::V x = Simd::splat(a[i * k + p]);
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[i][v] = Simd::fma(x, bv[v], acc[i][v]);
      }
    }
    for (int i = 0; i < M; i++) {
      alignas(64) float sums[kSweepColumns];
      for (int v = 0; v < 4; v++) Simd::store(sums + v * W, acc[i][v]);
      for (int c = 0; c < kSweepColumns; c++) storeOne(g, i, j + c, sums[c]);
    }
  }
  for (; j < j1; j++) {
    for (int i = 0; i < M; i++) {
      float sum = 0;
      for (int64_t p = 0; p < k; p++) sum += a[i * k + p] * widen(g.b.at(j, p), 0, Dtype);
      storeOne(g, i, j, sum);
    }
  }
}

#if defined(__AVX512BF16__)
/** dotRows for bf16 B with A rounded to bf16 (rows kPadded apart, zero past k): VDPBF16PS. */
template <int M>
void dotRowsPairs(const GemmCall& g, const uint16_t* a, int64_t kPadded, int64_t j0, int64_t j1) {
  const int64_t k = g.k;
  const __mmask32 tail = static_cast<__mmask32>((uint64_t{1} << (k % 32)) - 1);
  for (int64_t j = j0; j < j1; j++) {
    const uint16_t* b = reinterpret_cast<const uint16_t*>(g.b.at(j, 0));
    __m512 acc[M][2];
    for (int i = 0; i < M; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p + 64 <= k; p += 64) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p);
      const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + p + 32);
#pragma GCC unroll 4
      for (int i = 0; i < M; i++) {
        const uint16_t* row = a + i * kPadded + p;
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], (__m512bh)_mm512_load_si512(row), b0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], (__m512bh)_mm512_load_si512(row + 32), b1);
      }
    }
    for (; p < k; p += 32) {
      // The last vector may pass k: its B lanes load as zero (masked), A is zero there too.
      const __m512bh bv = (__m512bh)(p + 32 <= k ? _mm512_loadu_si512(b + p)
                                                  : _mm512_maskz_loadu_epi16(tail, b + p));
      for (int i = 0; i < M; i++) {
        const __m512bh row = (__m512bh)_mm512_load_si512(a + i * kPadded + p);
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], row, bv);
      }
    }
    for (int i = 0; i < M; i++)
      storeOne(g, i, j, _mm512_reduce_add_ps(_mm512_add_ps(acc[i][0], acc[i][1])));
  }
}
#endif

using ColumnsFn = void (*)(const GemmCall&, const float*, int64_t, int64_t);

template <int M, int Dtype>
ColumnsFn columnsFn(bool dot) {
  return dot ? dotRows<M, Dtype> : sweepColumns<M, Dtype>;
}

template <int M>
ColumnsFn columnsFn(bool dot, int dtype) {
  if (dtype == kF32) return columnsFn<M, kF32>(dot);
  return dtype == kBf16 ? columnsFn<M, kBf16>(dot) : columnsFn<M, kF16>(dot);
}

/**
 * Splits C's n columns over the pool in units of `unit` columns, `unitBytes` of B each. A slice
 * reads at most about 1 MiB of B: the threads then finish within a few slices' time of each other
 * even on a product as large as an LM head (hundreds of MiB), where a quarter of each thread's
 * share per slice let one late slice hold the whole product up. Measured on the 0.5B LM head (272
 * MB of bf16, 2 threads, medians of 30 alternating runs): 29.7 -> 31.6 and 34.8 -> 36.0 GB/s.
 */
template <class Body>
void forColumns(int64_t n, int64_t unit, size_t unitBytes, const Body& body) {
  constexpr size_t kSliceBytes = size_t{1} << 20;
  parallelFor(
      (n + unit - 1) / unit,
      [&](int64_t begin, int64_t end) { body(begin * unit, std::min(n, end * unit)); },
      static_cast<int64_t>(std::max<size_t>(1, kSliceBytes / std::max<size_t>(1, unitBytes))));
}

}  // namespace

void multiplyStreaming(const GemmCall& g) {
  const int64_t m = g.m, k = g.k;
  const bool dot = g.b.stepStride == 1;  // B transposed: its rows are op(B)'s columns
  // Units of 16 dot products (a few hundred KiB of weights), or of one sweep's columns.
  const int64_t unit = dot ? 16 : kSweepColumns;
  const size_t unitBytes = static_cast<size_t>(unit * k) * StridedView::dtypeBytes(g.b.dtype);
#if defined(__AVX512BF16__)
  if (g.bf16Pairs && dot) {
    const int64_t kPadded = (k + 31) / 32 * 32;
    uint16_t* a = rowsScratch().get<uint16_t>(m * kPadded * 2);
    for (int64_t i = 0; i < m; i++)
      for (int64_t p = 0; p < kPadded; p++)
        a[i * kPadded + p] = p < k ? floatToBf16(widen(g.a.at(i, p), 0, g.a.dtype)) : 0;
    using PairsFn = void (*)(const GemmCall&, const uint16_t*, int64_t, int64_t, int64_t);
    const PairsFn fn = m == 1   ? dotRowsPairs<1>
                       : m == 2 ? dotRowsPairs<2>
                       : m == 3 ? dotRowsPairs<3>
                                : dotRowsPairs<4>;
    forColumns(g.n, unit, unitBytes, [&](int64_t j0, int64_t j1) { fn(g, a, kPadded, j0, j1); });
    return;
  }
#endif
  float* a = rowsScratch().get<float>(m * k * 4);
  for (int64_t i = 0; i < m; i++)
    for (int64_t p = 0; p < k; p++) a[i * k + p] = widen(g.a.at(i, p), 0, g.a.dtype);
  const ColumnsFn fn = m == 1   ? columnsFn<1>(dot, g.b.dtype)
                       : m == 2 ? columnsFn<2>(dot, g.b.dtype)
                       : m == 3 ? columnsFn<3>(dot, g.b.dtype)
                                : columnsFn<4>(dot, g.b.dtype);
  forColumns(g.n, unit, unitBytes, [&](int64_t j0, int64_t j1) { fn(g, a, j0, j1); });
}

}  // namespace lf::gemm
