// The gate activations of the gated MLP, down(act(gate) · up) (src/engine/cpu/assembly/
// elementwise.ts): SiLU (Llama, Qwen) and GELU-tanh (Gemma), the latter written with the sigmoid:
// 0.5·x·(1 + tanh(u)) = x·σ(2u), u = √(2/π)·(x + 0.044715·x³). Work items: elements.
#include "lib/simd.h"

#include "../kernel.h"
#include "lib/args.h"
#include "lib/math.h"

namespace {

using lf::madd;
using lf::splat;
using lf::vf;

enum class Activation { kSilu = 0, kGeluTanh = 1 };

constexpr float kGeluK = 0.7978845608028654f;  // √(2/π)
constexpr float kGeluC = 0.044715f;

/** σ(2u) of GELU-tanh at x. */
inline vf geluSigmoid(vf x) {
  const vf u = splat<vf>(kGeluK) * madd(splat<vf>(kGeluC) * x, x * x, x);
  return lf::sigmoidv(u + u);
}

template <Activation act>
inline vf activation(vf g) {
  return g * (act == Activation::kGeluTanh ? geluSigmoid(g) : lf::sigmoidv(g));
}

/** act'(g). */
template <Activation act>
inline vf activationGrad(vf g) {
  if constexpr (act == Activation::kGeluTanh) {
    // d/dx x·σ(2u) = s + x·s·(1 − s)·2u', u' = √(2/π)·(1 + 3·0.044715·x²)
    const vf s = geluSigmoid(g);
    const vf du2 = splat<vf>(2 * kGeluK) * madd(splat<vf>(3 * kGeluC), g * g, splat<vf>(1));
    return madd(g * s * (splat<vf>(1) - s), du2, s);
  }
  // silu'(g) = s * (1 + g * (1 - s))
  const vf s = lf::sigmoidv(g);
  return s * madd(g, splat<vf>(1) - s, splat<vf>(1));
}

template <Activation act>
void gatedForwardOf(const float* gate, const float* up, float* out, int64_t start, int64_t end) {
  lf::forVectors(start, end, [&](int64_t i, auto lanes) {
    lanes.store(out + i, activation<act>(lanes.load(gate + i)) * lanes.load(up + i));
  });
}

template <Activation act>
void gatedBackwardOf(const float* gate, const float* up, const float* dout, float* dgate,
                     float* dup, int64_t start, int64_t end) {
  lf::forVectors(start, end, [&](int64_t i, auto lanes) {
    const vf g = lanes.load(gate + i), u = lanes.load(up + i), d = lanes.load(dout + i);
    lanes.store(dgate + i, d * u * activationGrad<act>(g));
    lanes.store(dup + i, d * activation<act>(g));
  });
}

}  // namespace

/** out = act(gate) * up; activation 0 = silu, 1 = gelu_tanh (the spec's order). */
LF_KERNEL(gatedForward, 5) {
  const float* gate = lf::ptr<const float>(a[0]);
  const float* up = lf::ptr<const float>(a[1]);
  float* out = lf::ptr<float>(a[2]);
  if (lf::argI32(a[4]) == 0) gatedForwardOf<Activation::kSilu>(gate, up, out, start, end);
  else gatedForwardOf<Activation::kGeluTanh>(gate, up, out, start, end);
  return NAN;
}

/** dgate = dout * up * act'(gate), dup = dout * act(gate); dgate / dup may be gate / up. */
LF_KERNEL(gatedBackward, 7) {
  const float* gate = lf::ptr<const float>(a[0]);
  const float* up = lf::ptr<const float>(a[1]);
  const float* dout = lf::ptr<const float>(a[2]);
  float* dgate = lf::ptr<float>(a[3]);
  float* dup = lf::ptr<float>(a[4]);
  if (lf::argI32(a[6]) == 0)
    gatedBackwardOf<Activation::kSilu>(gate, up, dout, dgate, dup, start, end);
  else gatedBackwardOf<Activation::kGeluTanh>(gate, up, dout, dgate, dup, start, end);
  return NAN;
}
