// Rotate-half RoPE (src/engine/cpu/assembly/rope.ts).
#include "lib/simd.h"

#include <cstring>

#include "../kernel.h"
#include "lib/args.h"
#include "lib/math.h"

using lf::vf;

/**
 * Rotate-half RoPE of x [B,T,heads,D] at positions i32 [B,T]; `inverse` rotates by -angle (the
 * backward). out may be x. Only the first `rotaryDim` values of each head turn (pairs j, j +
 * rotaryDim/2: partial rotary); the rest are copied. Pair j turns by position * invFreq[j] (the
 * f32 product, as float32 torch computes it, its sin / cos then exact in f64), with cos and sin
 * multiplied by `scale` in f32. Work items: b * T + t. Pairs are the outer loop, a vector of
 * them at a time, so each frequency is read once per call.
 */
LF_KERNEL(ropeApply, 11) {
  const float* x = lf::ptr<const float>(a[0]);
  float* out = lf::ptr<float>(a[1]);
  const int32_t* positions = lf::ptr<const int32_t>(a[2]);
  const float* invFreq = lf::ptr<const float>(a[3]);
  const int64_t heads = lf::argI32(a[6]);
  const int64_t D = lf::argI32(a[7]);
  const bool inverse = lf::argI32(a[8]) != 0;
  const int64_t rotaryDim = lf::argI32(a[9]);
  const float scale = lf::argF32(a[10]);
  const int64_t half = rotaryDim >> 1;
  const float sinScale = inverse ? -scale : scale;
  lf::forVectors(0, half, [&](int64_t j, auto lanes) {
    const vf freq = lanes.load(invFreq + j);
    for (int64_t row = start; row < end; row++) {
      const float pos = static_cast<float>(positions[row]);
      vf cosv = {}, sinv = {};
      for (int lane = 0; lane < lanes.count; lane++) {
        const lf::SinCos angle = lf::sinCos(static_cast<double>(pos * freq[lane]));
        cosv[lane] = scale * static_cast<float>(angle.cos);
        sinv[lane] = sinScale * static_cast<float>(angle.sin);
      }
      const float* xRow = x + row * heads * D;
      float* oRow = out + row * heads * D;
      for (int64_t h = 0; h < heads; h++) {
        const vf x1 = lanes.load(xRow + h * D + j), x2 = lanes.load(xRow + h * D + j + half);
        lanes.store(oRow + h * D + j, x1 * cosv - x2 * sinv);
        lanes.store(oRow + h * D + j + half, x2 * cosv + x1 * sinv);
      }
    }
  });
  if (rotaryDim == D || out == x) return NAN;
  for (int64_t row = start; row < end; row++) {
    for (int64_t h = 0; h < heads; h++) {
      const int64_t head = (row * heads + h) * D;
      std::memcpy(out + head + rotaryDim, x + head + rotaryDim, (D - rotaryDim) * sizeof(float));
    }
  }
  return NAN;
}
