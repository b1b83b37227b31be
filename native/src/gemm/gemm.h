// The GEMM's arguments once decoded, shared by its paths (blocked.cc, streaming.cc, narrow.cc).
#pragma once
#include <cstddef>
#include <cstdint>

#include "convert.h"

namespace lf::gemm {

/**
 * An operand seen as lanes x steps: element (lane, step) is at lane * laneStride + step *
 * stepStride. op(A) has lanes = its rows, steps = k; op(B) has lanes = its columns, steps = k.
 * Packing turns either into panels of a few lanes, step-major; the transposes are only strides.
 */
struct StridedView {
  const uint8_t* base;
  size_t laneStride, stepStride;
  int dtype;
  const uint8_t* at(size_t lane, size_t step) const {
    return base + (lane * laneStride + step * stepStride) * dtypeBytes(dtype);
  }
  static size_t dtypeBytes(int dtype) { return dtype == kF32 ? 4 : 2; }
};

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct GemmCall {
  int64_t m, n, k;
  StridedView a, b;  // op(A) by rows, op(B) by columns
  float* c;
  size_t ldc;
  float alpha, beta;
  const float* bias;  // f32 [n] or null
  /** Multiply bf16 pairs (VDPBF16PS): precision 1, B bf16, and a variant that has it. */
  bool bf16Pairs;
};

/** The blocked product (packed panels, register tiles), any m. */
void multiplyBlocked(const GemmCall& g);

/** Rows of op(A) up to which the product skips packing B and streams it once (decode). */
constexpr int64_t kStreamingMaxRows = 4;

/** The streaming product for m <= kStreamingMaxRows: dot products (B transposed) or row sweeps. */
void multiplyStreaming(const GemmCall& g);

/** The narrow side (rows or columns of C) up to which multiplyNarrow takes a call. */
constexpr int64_t kNarrowMaxLanes = 16;

/**
 * The product when m or n is at most kNarrowMaxLanes and A and B are f32 (LoRA's rank-r
 * operands): false, having done nothing, when the call is not of that kind.
 */
bool multiplyNarrow(const GemmCall& g);

/** Writes one output: alpha * sum + beta * C (C unread when beta is 0) + bias. */
inline void storeOne(const GemmCall& g, int64_t i, int64_t j, float sum) {
  float& out = g.c[i * g.ldc + j];
  float value = g.alpha * sum;
  if (g.beta != 0) value += g.beta * out;
  if (g.bias) value += g.bias[j];
  out = value;
}

}  // namespace lf::gemm
