// Packing of GEMM operands into panels: `width` lanes side by side for each step, step-major, so
// the micro-kernel reads both operands contiguously. Lanes past the operand's edge are zero.
// f32 panels hold widened values; pair panels hold two consecutive steps of a lane as bf16 in one
// 32-bit word (low half the even step), the operand layout of VDPBF16PS.
#pragma once
#include <algorithm>
#include <cstring>

#include "gemm.h"
#include "simd.h"

namespace lf::gemm {

template <int Dtype>
inline float elementAt(const uint8_t* base, size_t index) {
  if constexpr (Dtype == kF32) {
    return reinterpret_cast<const float*>(base)[index];
  } else {
    const uint16_t half = reinterpret_cast<const uint16_t*>(base)[index];
    if constexpr (Dtype == kBf16) return bf16ToFloat(half);
    else return f16ToFloat(half);
  }
}

/** One lane's steps (step apart in the source) to dst, `width` apart. */
template <int Dtype>
inline void packLane(const uint8_t* lane, size_t step, int steps, int width, float* dst) {
  for (int s = 0; s < steps; s++) dst[s * width] = elementAt<Dtype>(lane, s * step);
}

#if defined(__AVX512F__)
/**
 * out[j] = column j of the 16 x 16 block of 32-bit words in[0..16) (row i = in[i]): unpacks of
 * words and word pairs within 128-bit lanes, then two rounds of 128-bit lane shuffles.
 */
inline void transpose16x16(const __m512i in[16], __m512i out[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(in[i], in[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(in[i], in[i + 1]);
  }
  // u[4g + c], 128-bit lane q: column 4q + c of rows 4g .. 4g + 3.
  for (int g = 0; g < 16; g += 4) {
    u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  for (int c = 0; c < 4; c++) {
    const __m512i even0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
    const __m512i odd0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i even1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
    const __m512i odd1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    out[c] = _mm512_shuffle_i32x4(even0, even1, 0x88);
    out[4 + c] = _mm512_shuffle_i32x4(odd0, odd1, 0x88);
    out[8 + c] = _mm512_shuffle_i32x4(even0, even1, 0xdd);
    out[12 + c] = _mm512_shuffle_i32x4(odd0, odd1, 0xdd);
  }
}

/** Up to 16 consecutive elements (`count`) from p widened to f32 words, zero past count. */
template <int Dtype>
inline __m512i loadStepsWidened(const uint8_t* p, int count) {
  const __mmask16 mask = count >= 16 ? __mmask16(0xffff) : __mmask16((1u << count) - 1);
  if constexpr (Dtype == kF32) return _mm512_maskz_loadu_epi32(mask, p);
  const __m256i half = _mm256_maskz_loadu_epi16(mask, p);
  if constexpr (Dtype == kBf16) return _mm512_slli_epi32(_mm512_cvtepu16_epi32(half), 16);
  else return _mm512_castps_si512(_mm512_cvtph_ps(half));
}

/**
 * packF32 for lanes whose steps are contiguous (weights [out, in] as B): blocks of 16 lanes x 16
 * steps loaded row by row and transposed in registers, instead of one scalar write per element.
 */
template <int Dtype>
void packF32Transposed(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                       int steps, float* dst) {
  const size_t laneBytes = x.laneStride * StridedView::dtypeBytes(Dtype);
  const uint8_t* base = x.at(lane0, step0);
  __m512i rows[16], cols[16];
  for (int l0 = 0; l0 < width; l0 += 16) {
    for (int s = 0; s < steps; s += 16) {
      const int count = std::min(16, steps - s);
      for (int i = 0; i < 16; i++)
        rows[i] = l0 + i < lanes ? loadStepsWidened<Dtype>(
                                       base + (l0 + i) * laneBytes +
                                           s * StridedView::dtypeBytes(Dtype),
                                       count)
                                 : _mm512_setzero_si512();
      transpose16x16(rows, cols);
      for (int q = 0; q < count; q++) _mm512_storeu_si512(dst + (s + q) * width + l0, cols[q]);
    }
  }
}
#endif

template <int Dtype>
void packF32Typed(const StridedView& x, size_t lane0, int lanes, int width, size_t step0, int steps,
                  float* dst) {
  const uint8_t* base = x.at(lane0, step0);
  if (x.laneStride == 1 && lanes == width && width % Simd::W == 0) {
    // Lanes contiguous in memory (plain B, transposed A): whole vectors per step.
    const size_t bytes = StridedView::dtypeBytes(Dtype), stepBytes = x.stepStride * bytes;
    for (int s = 0; s < steps; s++, dst += width)
      for (int l = 0; l < width; l += Simd::W)
        Simd::store(dst + l, loadWidened(base + s * stepBytes + l * bytes, Dtype));
    return;
  }
#if defined(__AVX512F__)
  if (x.stepStride == 1 && width % 16 == 0) {
    packF32Transposed<Dtype>(x, lane0, lanes, width, step0, steps, dst);
    return;
  }
#endif
  // Lane by lane: each lane's steps are read in memory order when steps are contiguous (weights
  // [out, in] as B, plain A), and written `width` apart. A literal unit step lets the compiler
  // vectorize that common case.
  const size_t laneBytes = x.laneStride * StridedView::dtypeBytes(Dtype);
  for (int l = 0; l < lanes; l++) {
    if (x.stepStride == 1) packLane<Dtype>(base + l * laneBytes, 1, steps, width, dst + l);
    else packLane<Dtype>(base + l * laneBytes, x.stepStride, steps, width, dst + l);
  }
  for (int l = lanes; l < width; l++)
    for (int s = 0; s < steps; s++) dst[s * width + l] = 0;
}

/** Lanes [lane0, lane0 + lanes) x steps [step0, step0 + steps) of x as one f32 panel. */
inline void packF32(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                    int steps, float* dst) {
  if (x.dtype == kF32) packF32Typed<kF32>(x, lane0, lanes, width, step0, steps, dst);
  else if (x.dtype == kBf16) packF32Typed<kBf16>(x, lane0, lanes, width, step0, steps, dst);
  else packF32Typed<kF16>(x, lane0, lanes, width, step0, steps, dst);
}

template <int Dtype>
inline uint16_t bf16At(const uint8_t* base, size_t index) {
  if constexpr (Dtype == kBf16) return reinterpret_cast<const uint16_t*>(base)[index];
  else return floatToBf16(elementAt<Dtype>(base, index));
}

/** One lane's steps (step apart in the source) as pairs to dst, `width` apart. */
template <int Dtype>
inline void packLanePairs(const uint8_t* lane, size_t step, int steps, int width, uint32_t* dst) {
  int s = 0;
  for (; s + 1 < steps; s += 2) {
    const uint32_t even = bf16At<Dtype>(lane, s * step), odd = bf16At<Dtype>(lane, (s + 1) * step);
    dst[(s / 2) * width] = even | odd << 16;
  }
  if (s < steps) dst[(s / 2) * width] = bf16At<Dtype>(lane, s * step);
}

#if defined(__AVX512BF16__)
/**
 * packLanePairs for f32 steps in a row (activations A): 32 at a time rounded by one
 * VCVTNE2PS2BF16 (ties to even, as floatToBf16; subnormals become zero, as VDPBF16PS reads them
 * anyway), then written out pair by pair.
 */
inline void packF32LanePairs(const float* lane, int steps, int width, uint32_t* dst) {
  int s = 0;
  for (; s + 32 <= steps; s += 32) {
    const __m512bh rounded = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(lane + s + 16),
                                                 _mm512_loadu_ps(lane + s));
    alignas(64) uint32_t pairs[16];
    _mm512_store_si512(pairs, (__m512i)rounded);
    for (int p = 0; p < 16; p++) dst[(s / 2 + p) * width] = pairs[p];
  }
  packLanePairs<kF32>(reinterpret_cast<const uint8_t*>(lane + s), 1, steps - s, width,
                      dst + (s / 2) * width);
}
#endif

#if defined(__AVX512BF16__)
/**
 * Pair panels of bf16 lanes whose steps are contiguous (weights [out, in] as B): a lane's pair is
 * already one 32-bit word in memory, so blocks of 16 lanes x 16 pairs are transposed in registers.
 * Masked loads zero the lanes past the edge and the half of a last odd step's pair.
 */
inline void packBf16PairsTransposed(const StridedView& x, size_t lane0, int lanes, int width,
                                    size_t step0, int steps, uint32_t* dst) {
  const size_t laneBytes = x.laneStride * 2;
  const uint8_t* base = x.at(lane0, step0);
  __m512i rows[16], cols[16];
  for (int l0 = 0; l0 < width; l0 += 16) {
    for (int s = 0; s < steps; s += 32) {
      const int count = std::min(32, steps - s);
      const __mmask32 mask = count >= 32 ? ~__mmask32(0) : __mmask32((1u << count) - 1);
      for (int i = 0; i < 16; i++)
        rows[i] = l0 + i < lanes
                      ? _mm512_maskz_loadu_epi16(mask, base + (l0 + i) * laneBytes + s * 2)
                      : _mm512_setzero_si512();
      transpose16x16(rows, cols);
      for (int q = 0; q < (count + 1) / 2; q++)
        _mm512_storeu_si512(dst + (s / 2 + q) * width + l0, cols[q]);
    }
  }
}

/**
 * Pair panels of 32 bf16 lanes that are contiguous (B plain, [k, n]): each pair interleaves two
 * rows, so one two-source permute per 16 lanes makes 16 pairs from a load of each row.
 */
inline void packBf16PairsInterleaved(const StridedView& x, size_t lane0, int lanes, size_t step0,
                                     int steps, uint32_t* dst) {
  alignas(64) static constexpr uint16_t kLow[32] = {
      0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
      8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static constexpr uint16_t kHigh[32] = {
      16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
      24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  const __m512i low = _mm512_load_si512(kLow), high = _mm512_load_si512(kHigh);
  const __mmask32 mask = lanes >= 32 ? ~__mmask32(0) : __mmask32((1u << lanes) - 1);
  const size_t stepBytes = x.stepStride * 2;
  const uint8_t* base = x.at(lane0, step0);
  for (int s = 0; s < steps; s += 2, dst += 32) {
    const __m512i even = _mm512_maskz_loadu_epi16(mask, base + s * stepBytes);
    const __m512i odd = s + 1 < steps
                            ? _mm512_maskz_loadu_epi16(mask, base + (s + 1) * stepBytes)
                            : _mm512_setzero_si512();
    _mm512_storeu_si512(dst, _mm512_permutex2var_epi16(even, low, odd));
    _mm512_storeu_si512(dst + 16, _mm512_permutex2var_epi16(even, high, odd));
  }
}
#endif

template <int Dtype>
void packPairsTyped(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                    int steps, uint32_t* dst) {
#if defined(__AVX512BF16__)
  if (Dtype == kBf16 && width == 32) {
    if (x.stepStride == 1) return packBf16PairsTransposed(x, lane0, lanes, width, step0, steps, dst);
    if (x.laneStride == 1) return packBf16PairsInterleaved(x, lane0, lanes, step0, steps, dst);
  }
#endif
  const uint8_t* base = x.at(lane0, step0);
  const size_t laneBytes = x.laneStride * StridedView::dtypeBytes(Dtype);
  for (int l = 0; l < lanes; l++) {
    const uint8_t* lane = base + l * laneBytes;
#if defined(__AVX512BF16__)
    if (Dtype == kF32 && x.stepStride == 1) {
      packF32LanePairs(reinterpret_cast<const float*>(lane), steps, width, dst + l);
      continue;
    }
#endif
    // As in packF32Typed, a literal unit step for the common case.
    if (x.stepStride == 1) packLanePairs<Dtype>(lane, 1, steps, width, dst + l);
    else packLanePairs<Dtype>(lane, x.stepStride, steps, width, dst + l);
  }
  const int pairs = (steps + 1) / 2;
  for (int l = lanes; l < width; l++)
    for (int p = 0; p < pairs; p++) dst[p * width + l] = 0;
}

/** As packF32, as bf16 pairs (f32 and f16 values rounded to the nearest bf16). */
inline void packPairs(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                      int steps, uint32_t* dst) {
  if (x.dtype == kF32) packPairsTyped<kF32>(x, lane0, lanes, width, step0, steps, dst);
  else if (x.dtype == kBf16) packPairsTyped<kBf16>(x, lane0, lanes, width, step0, steps, dst);
  else packPairsTyped<kF16>(x, lane0, lanes, width, step0, steps, dst);
}

}  // namespace lf::gemm
