// Probes for the benchmarks: the variant's multiply-add peaks on the calling thread (timed from
// JavaScript), and a STREAM-like parallel read of a buffer (the decode bandwidth ceiling).
//   fmaPeak(iterations) -> flops done: 12 independent f32 multiply-add chains at the variant's
//     vector width (12 cover the latency x throughput of current cores; baseline SSE2 has no FMA,
//     so there a multiply and an add count as the same 2 flops).
//   bf16DotPeak(iterations) -> flops done with VDPBF16PS chains (2 multiply-adds per f32 lane),
//     or 0 where the variant has no such instruction.
//   streamRead(address, bytes) -> a checksum of the buffer's 64-bit words (read once, in parallel).
#include <algorithm>
#include <atomic>
#include <cmath>

#include "../kernel.h"
#include "simd.h"

namespace {

constexpr int kChains = 12;

// Where the chains' results go, so that no chain is dead code.
volatile float sink;

}  // namespace

LF_KERNEL(fmaPeak, 1) {
  (void)start;
  (void)end;
  using lf::gemm::Simd;
  const int64_t iterations = static_cast<int64_t>(a[0]);
  // Operands the compiler cannot know: the chains stay finite (x * y is tiny).
  const Simd::V x = Simd::splat(1e-8f * static_cast<float>(iterations % 7 + 1));
  const Simd::V y = Simd::splat(0.5f);
  Simd::V acc[kChains];
  for (auto& v : acc) v = Simd::zero();
  for (int64_t i = 0; i < iterations; i++) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; c++) acc[c] = Simd::fma(x, y, acc[c]);
  }
  Simd::V total = acc[0];
  for (int c = 1; c < kChains; c++) total = Simd::add(total, acc[c]);
  sink = Simd::sum(total);
  return static_cast<double>(iterations) * kChains * 2 * Simd::W;
}

LF_KERNEL(bf16DotPeak, 1) {
  (void)start;
  (void)end;
#if defined(__AVX512BF16__)
  const int64_t iterations = static_cast<int64_t>(a[0]);
  const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(0x3c003c00 + iterations % 7));
  const __m512bh y = (__m512bh)_mm512_set1_epi32(0x3f003f00);
  __m512 acc[kChains];
  for (auto& v : acc) v = _mm512_setzero_ps();
  for (int64_t i = 0; i < iterations; i++) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; c++) acc[c] = _mm512_dpbf16_ps(acc[c], x, y);
  }
  __m512 total = acc[0];
  for (int c = 1; c < kChains; c++) total = _mm512_add_ps(total, acc[c]);
  sink = _mm512_reduce_add_ps(total);
  return static_cast<double>(iterations) * kChains * 64;  // 16 lanes x 2 multiply-adds x 2 flops
#else
  (void)a;
  return 0;
#endif
}

LF_KERNEL(streamRead, 2) {
  (void)start;
  (void)end;
  const uint64_t* data = lf::ptr<const uint64_t>(a[0]);
  const int64_t words = static_cast<int64_t>(a[1]) / 8;
  // Slices of 1 MiB: many per thread, so a thread slowed by another process gets fewer.
  constexpr int64_t kSliceWords = (1 << 20) / 8;
  std::atomic<uint64_t> checksum{0};
  lf::parallelFor((words + kSliceWords - 1) / kSliceWords, [&](int64_t begin, int64_t end) {
    const int64_t from = begin * kSliceWords, to = std::min(words, end * kSliceWords);
    // Four sums: independent adds the compiler turns into vector adds, far below load speed.
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = from;
    for (; i + 4 <= to; i += 4) {
      s0 += data[i];
      s1 += data[i + 1];
      s2 += data[i + 2];
      s3 += data[i + 3];
    }
    for (; i < to; i++) s0 += data[i];
    checksum += s0 + s1 + s2 + s3;
  });
  // A double holds 52 bits exactly: the low ones.
  return static_cast<double>(checksum.load() & ((uint64_t{1} << 52) - 1));
}
