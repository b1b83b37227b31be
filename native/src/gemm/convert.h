// Scalar element conversions of the GEMM operands (dtype codes of GemmArgs: 0 f32, 1 bf16, 2 f16).
#pragma once
#include <cstdint>
#include <cstring>

namespace lf::gemm {

enum Dtype : int { kF32 = 0, kBf16 = 1, kF16 = 2 };

inline float bitsToFloat(uint32_t bits) {
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

inline uint32_t floatToBits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return bits;
}

inline float bf16ToFloat(uint16_t h) { return bitsToFloat(static_cast<uint32_t>(h) << 16); }

inline float f16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t magnitude = h & 0x7fff;
  if (magnitude >= 0x7c00) return bitsToFloat(sign | 0x7f800000 | (magnitude & 0x3ff) << 13);
  // As f32 bits, magnitude << 13 is the value scaled by 2^-112 (exact, subnormals included).
  const float value = bitsToFloat(magnitude << 13) * 0x1p112f;
  return bitsToFloat(floatToBits(value) | sign);
}

/** x rounded to the nearest bf16, ties to even (NaN stays NaN). */
inline uint16_t floatToBf16(float x) {
  uint32_t bits = floatToBits(x);
  if ((bits & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

/** Element `index` of an operand of `dtype`, as f32. */
inline float widen(const void* base, size_t index, int dtype) {
  if (dtype == kF32) return static_cast<const float*>(base)[index];
  const uint16_t h = static_cast<const uint16_t*>(base)[index];
  return dtype == kBf16 ? bf16ToFloat(h) : f16ToFloat(h);
}

}  // namespace lf::gemm
