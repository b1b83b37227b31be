// Packing of GEMM operands into panels: `width` lanes side by side for each step, step-major, so
// the micro-kernel reads both operands contiguously. Lanes past the operand's edge are zero.
// f32 panels hold widened values; pair panels hold two consecutive steps of a lane as bf16 in one
// 32-bit word (low half the even step), the operand layout of VDPBF16PS.
#pragma once
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

template <int Dtype>
void packPairsTyped(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                    int steps, uint32_t* dst) {
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
