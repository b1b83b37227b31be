// One vector type per ISA variant behind the same few operations, so that the GEMM's micro-kernel,
// packing and dot products are written once: the variant's compiler flags pick the block below.
// W is the number of f32 lanes. Also the f32 micro-kernel's register tile (kTileRows rows x
// kTileVectors vectors of columns): as many accumulators as the register file holds next to the
// B vectors and one broadcast.
#pragma once
#include <cstdint>

#include "convert.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace lf::gemm {

#if defined(__AVX512F__)
struct Simd {
  using V = __m512;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V splat(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V loadBf16(const uint16_t* p) {
    const __m256i half = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m512i wide = _mm512_cvtepu16_epi32(half);
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static V loadF16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
};
constexpr int kTileRows = 14, kTileVectors = 2;  // 28 accumulators + 2 B + 1 A of 32 zmm
#elif defined(__AVX2__)
struct Simd {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V splat(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V loadBf16(const uint16_t* p) {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i wide = _mm256_cvtepu16_epi32(half);
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static V loadF16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float sum(V v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
  }
};
constexpr int kTileRows = 6, kTileVectors = 2;  // 12 accumulators + 2 B + 1 A of 16 ymm
#elif defined(__ARM_NEON)
struct Simd {
  using V = float32x4_t;
  static constexpr int W = 4;
  static V zero() { return vdupq_n_f32(0); }
  static V splat(float x) { return vdupq_n_f32(x); }
  static V load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V loadBf16(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static V loadF16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static float sum(V v) { return vaddvq_f32(v); }
};
constexpr int kTileRows = 8, kTileVectors = 3;  // 24 accumulators + 3 B + 1 A of 32 q registers
#else
// Baseline x86-64: SSE2, which has no fused multiply-add (products and sums round separately).
struct Simd {
  using V = __m128;
  static constexpr int W = 4;
  static V zero() { return _mm_setzero_ps(); }
  static V splat(float x) { return _mm_set1_ps(x); }
  static V load(const float* p) { return _mm_loadu_ps(p); }
  static void store(float* p, V v) { _mm_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
  static V add(V a, V b) { return _mm_add_ps(a, b); }
  static V mul(V a, V b) { return _mm_mul_ps(a, b); }
  static V loadBf16(const uint16_t* p) {
    const __m128i half = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), half));
  }
  static V loadF16(const uint16_t* p) {
    return _mm_setr_ps(f16ToFloat(p[0]), f16ToFloat(p[1]), f16ToFloat(p[2]), f16ToFloat(p[3]));
  }
  static float sum(V v) {
    __m128 x = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(x, _mm_shuffle_ps(x, x, 1)));
  }
};
constexpr int kTileRows = 6, kTileVectors = 2;  // 12 accumulators + 2 B + 1 A of 16 xmm
#endif

/** W elements of an operand of `dtype` from p, widened to f32. */
inline Simd::V loadWidened(const void* p, int dtype) {
  if (dtype == kF32) return Simd::load(static_cast<const float*>(p));
  if (dtype == kBf16) return Simd::loadBf16(static_cast<const uint16_t*>(p));
  return Simd::loadF16(static_cast<const uint16_t*>(p));
}

}  // namespace lf::gemm
