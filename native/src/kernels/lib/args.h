// Kernel arguments as the wasm exports receive them: JavaScript numbers converted to i32 / u32
// (ToInt32: modulo 2^32) and f32 (rounded once), so that a native kernel given the same numbers
// computes with the same values.
#pragma once
#include <cmath>
#include <cstdint>

namespace lf {
namespace {

inline uint32_t argU32(double value) {
  return static_cast<uint32_t>(static_cast<int64_t>(std::fmod(std::trunc(value), 4294967296.0)));
}

inline int32_t argI32(double value) { return static_cast<int32_t>(argU32(value)); }

inline float argF32(double value) { return static_cast<float>(value); }

}  // namespace
}  // namespace lf
