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
  // [out, in] as B, plain A), and written `width` apart.
  for (int l = 0; l < lanes; l++)
    for (int s = 0; s < steps; s++)
      dst[s * width + l] = elementAt<Dtype>(base, l * x.laneStride + s * x.stepStride);
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

template <int Dtype>
void packPairsTyped(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                    int steps, uint32_t* dst) {
  const uint8_t* base = x.at(lane0, step0);
  const int pairs = (steps + 1) / 2;
  for (int l = 0; l < lanes; l++) {
    const size_t lane = l * x.laneStride;
    int s = 0;
    if (Dtype == kBf16 && x.stepStride == 1) {
      // A bf16 lane contiguous in steps already holds its pairs as 32-bit words.
      for (; s + 1 < steps; s += 2)
        std::memcpy(&dst[(s / 2) * width + l], base + (lane + s) * 2, 4);
    }
    for (; s < steps; s += 2) {
      const uint32_t even = bf16At<Dtype>(base, lane + s * x.stepStride);
      const uint32_t odd = s + 1 < steps ? bf16At<Dtype>(base, lane + (s + 1) * x.stepStride) : 0;
      dst[(s / 2) * width + l] = even | odd << 16;
    }
  }
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
