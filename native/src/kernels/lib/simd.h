// Vectors for the kernels that mirror src/engine/cpu/assembly/*.ts: `vf`, as wide as this build's
// ISA allows (AVX-512: 16 floats, AVX2: 8, SSE2 / NEON: 4), and `v4`, the four lanes of a wasm
// v128 where a kernel's numerics follow its 4-wide blocks (attention's blocks of four keys).
// GCC / Clang vector extensions give the arithmetic; intrinsics only where they must (fused
// multiply-add). Everything here has internal linkage: each variant's .node is self-contained.
#pragma once

#include "no-contract.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#if defined(__AVX512F__)
#define LF_WIDTH 16
#elif defined(__AVX2__)
#define LF_WIDTH 8
#else
#define LF_WIDTH 4
#endif

namespace lf {
namespace {

constexpr int kWidth = LF_WIDTH;

typedef float vf __attribute__((vector_size(LF_WIDTH * 4)));
typedef int32_t vfi __attribute__((vector_size(LF_WIDTH * 4)));
typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

/** The integer vector of V's shape (comparison results, bit patterns). */
template <class V>
using IntsOf = typename std::conditional<sizeof(V) == 16, v4i, vfi>::type;

template <class V>
inline V splat(float x) {
  return x - V{};  // x − 0 is x for every x, −0 included (0 + x would turn −0 into +0)
}

template <class V>
inline V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
inline void store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

/** a * b + c, fused where the ISA has FMA (as wasm's relaxed_madd there), else rounded twice. */
template <class V>
inline V madd(V a, V b, V c) {
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) return _mm512_fmadd_ps(a, b, c);
#endif
#if defined(__FMA__)
  if constexpr (sizeof(V) == 32) return _mm256_fmadd_ps(a, b, c);
  if constexpr (sizeof(V) == 16) return _mm_fmadd_ps(a, b, c);
#elif defined(__aarch64__)
  if constexpr (sizeof(V) == 16)
    return reinterpret_cast<V>(vfmaq_f32(reinterpret_cast<float32x4_t>(c),
                                         reinterpret_cast<float32x4_t>(a),
                                         reinterpret_cast<float32x4_t>(b)));
#endif
  return a * b + c;
}

/**
 * wasm's f32x4.pmin / pmax: b < a ? b : a and a < b ? b : a (a NaN in `a` stays). x86's min / max
 * with the operands swapped are exactly that; GCC only finds it for some widths (SSE2 got a
 * compare-and-blend).
 */
template <class V>
inline V pmin(V a, V b) {
#if defined(__x86_64__)
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) return _mm512_min_ps(b, a);
#endif
#if defined(__AVX__)
  if constexpr (sizeof(V) == 32) return _mm256_min_ps(b, a);
#endif
  if constexpr (sizeof(V) == 16) return _mm_min_ps(b, a);
#endif
  return b < a ? b : a;
}
template <class V>
inline V pmax(V a, V b) {
#if defined(__x86_64__)
#if defined(__AVX512F__)
  if constexpr (sizeof(V) == 64) return _mm512_max_ps(b, a);
#endif
#if defined(__AVX__)
  if constexpr (sizeof(V) == 32) return _mm256_max_ps(b, a);
#endif
  if constexpr (sizeof(V) == 16) return _mm_max_ps(b, a);
#endif
  return a < b ? b : a;
}

/** a with the lanes where `mask` is set cleared (wasm's v128.andnot). */
template <class V>
inline V clearWhere(V a, IntsOf<V> mask) {
  return reinterpret_cast<V>(reinterpret_cast<IntsOf<V>>(a) & ~mask);
}

/** The sum of a full vector's lanes folded into four (halves added until four lanes are left). */
inline v4 fold4(vf v) {
#if LF_WIDTH == 16
  typedef float v8 __attribute__((vector_size(32)));
  v8 half = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
            __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  return __builtin_shufflevector(half, half, 0, 1, 2, 3) +
         __builtin_shufflevector(half, half, 4, 5, 6, 7);
#elif LF_WIDTH == 8
  return __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
#else
  return v;
#endif
}

/** The largest lane folded into four, as fold4. */
inline v4 foldMax4(vf v) {
#if LF_WIDTH == 16
  typedef float v8 __attribute__((vector_size(32)));
  v8 half = pmax(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7),
                 __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
  return pmax(__builtin_shufflevector(half, half, 0, 1, 2, 3),
              __builtin_shufflevector(half, half, 4, 5, 6, 7));
#elif LF_WIDTH == 8
  return pmax(__builtin_shufflevector(v, v, 0, 1, 2, 3), __builtin_shufflevector(v, v, 4, 5, 6, 7));
#else
  return v;
#endif
}

/** Sum of four lanes in wasm hsum's order: (a0 + a2) + (a1 + a3). */
inline float hsum(v4 a) {
  v4 pairs = a + __builtin_shufflevector(a, a, 2, 3, 0, 1);
  return pairs[0] + pairs[1];
}
#if LF_WIDTH > 4  // else vf is v4
inline float hsum(vf a) { return hsum(fold4(a)); }
#endif

inline float hmax(v4 a) {
  v4 pairs = pmax(a, __builtin_shufflevector(a, a, 2, 3, 0, 1));
  return pairs[0] < pairs[1] ? pairs[1] : pairs[0];
}
#if LF_WIDTH > 4
inline float hmax(vf a) { return hmax(foldMax4(a)); }
#endif

/** [sum(a), sum(b), sum(c), sum(d)] in wasm hsum4's order: (x0 + x1) + (x2 + x3). */
inline v4 hsum4(v4 a, v4 b, v4 c, v4 d) {
  v4 ab = __builtin_shufflevector(a, b, 0, 4, 2, 6) + __builtin_shufflevector(a, b, 1, 5, 3, 7);
  v4 cd = __builtin_shufflevector(c, d, 0, 4, 2, 6) + __builtin_shufflevector(c, d, 1, 5, 3, 7);
  return __builtin_shufflevector(ab, cd, 0, 1, 4, 5) + __builtin_shufflevector(ab, cd, 2, 3, 6, 7);
}

/** Loads and stores of whole vectors (the body of a loop over rows of floats). */
struct Whole {
  static constexpr int count = kWidth;
  vf load(const float* p, float = 0) const { return lf::load<vf>(p); }
  void store(float* p, vf v) const { lf::store(p, v); }
  vf only(vf v) const { return v; }
};

/** The last `count` < kWidth floats of a row; lanes past them read as `fill` and are not stored. */
struct Tail {
  int count;
  vf load(const float* p, float fill = 0) const {
    vf v = splat<vf>(fill);
    for (int i = 0; i < count; i++) v[i] = p[i];
    return v;
  }
  void store(float* p, vf v) const {
    for (int i = 0; i < count; i++) p[i] = v[i];
  }
  /** v with the lanes past the tail zeroed (before adding it into a sum). */
  vf only(vf v) const {
    for (int i = count; i < kWidth; i++) v[i] = 0;
    return v;
  }
};

/**
 * body(i, lanes) for i over [start, end) in steps of kWidth: `lanes` is Whole, then Tail for the
 * remainder, so one body serves the vector loop and its tail (as the wasm kernels run their
 * formula on a splatted element for theirs).
 */
template <class Body>
inline void forVectors(int64_t start, int64_t end, Body&& body) {
  int64_t i = start;
  for (; i + kWidth <= end; i += kWidth) body(i, Whole{});
  if (i < end) body(i, Tail{static_cast<int>(end - i)});
}

}  // namespace
}  // namespace lf
