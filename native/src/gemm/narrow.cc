// The product when one side of C is narrow (LoRA's rank-r operands: x·Aᵀ, dy·B, dyᵀ·(x·Aᵀ),
// (dy·B)ᵀ·x with r <= kNarrowMaxLanes): the blocked path would pad the narrow side to a full
// register tile and pack the wide operand, which is all the work there is. Here the narrow operand
// is copied once into a compact [k][lanes] block and the wide one is read in place, once:
// - wide steps contiguous (its rows run along k): a few wide lanes at a time, each step's
//   narrow vector times the broadcast wide element;
// - wide lanes contiguous (k runs down its columns): a few vectors of wide lanes at a time, each
//   times the broadcast narrow elements of that step.
// f32 operands only (LoRA's adapters and activations); sums in f32 multiply-adds, in k order.
#include <algorithm>

#include "../kernel.h"
#include "gemm.h"
#include "scratch.h"
#include "simd.h"

namespace lf::gemm {
namespace {

constexpr int W = Simd::W;
/** Accumulators a tile may hold (the f32 micro-kernel's register budget). */
constexpr int kAccumulators = kTileRows * kTileVectors;

/** The wide side (lanes x k), the narrow side, and where output (wide i, narrow j) goes in C. */
struct NarrowProblem {
  const GemmCall& g;
  StridedView wide, narrow;
  int64_t wideLanes;
  int narrowLanes;
  bool narrowIsN;  // C[i, j] (narrow = columns of C) or C[j, i] (narrow = rows)
  void store(int64_t i, int j, float sum) const {
    if (narrowIsN) storeOne(g, i, j, sum);
    else storeOne(g, j, i, sum);
  }
};

/** The narrow operand as [k][stride] f32, lanes past narrowLanes zero. */
const float* packNarrow(const NarrowProblem& p, int stride) {
  thread_local Scratch scratch;  // the calling thread's, filled before the parallel part
  const int64_t k = p.g.k;
  float* out = scratch.get<float>(k * stride * sizeof(float));
  const float* base = reinterpret_cast<const float*>(p.narrow.base);
  for (int64_t s = 0; s < k; s++)
    for (int j = 0; j < stride; j++)
      out[s * stride + j] =
          j < p.narrowLanes ? base[j * p.narrow.laneStride + s * p.narrow.stepStride] : 0.0f;
  return out;
}

/** Wide steps contiguous: rows [i0, i0 + rows) of the wide side, NV vectors of narrow lanes. */
template <int NV>
void rowsTimesNarrow(const NarrowProblem& p, const float* narrow, int64_t i0, int rows) {
  constexpr int R = kAccumulators / NV;
  const int64_t k = p.g.k;
  const float* wide = reinterpret_cast<const float*>(p.wide.base);
  const float* row[R];
  for (int r = 0; r < R; r++) row[r] = wide + (i0 + std::min(r, rows - 1)) * p.wide.laneStride;
  Simd::V acc[R][NV];
#pragma GCC unroll 32
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) acc[r][v] = Simd::zero();
  for (int64_t s = 0; s < k; s++, narrow += NV * W) {
    Simd::V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) b[v] = Simd::load(narrow + v * W);
#pragma GCC unroll 32
    for (int r = 0; r < R; r++) {
      const Simd::V a = Simd::splat(row[r][s]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = Simd::fma(a, b[v], acc[r][v]);
    }
  }
  alignas(64) float sums[NV * W];
  for (int r = 0; r < rows; r++) {
    for (int v = 0; v < NV; v++) Simd::store(sums + v * W, acc[r][v]);
    for (int j = 0; j < p.narrowLanes; j++) p.store(i0 + r, j, sums[j]);
  }
}

/** Wide lanes contiguous: lanes [i0, i0 + V * W) (fewer at the edge), narrow lanes [j0, j0 + J). */
template <int J>
void narrowTimesColumns(const NarrowProblem& p, const float* narrow, int stride, int64_t i0,
                        int64_t lanes, int j0) {
  constexpr int V = std::max(1, kAccumulators / J);
  const int64_t k = p.g.k;
  const float* wide = reinterpret_cast<const float*>(p.wide.base) + i0;
  const size_t step = p.wide.stepStride;
  Simd::V acc[J][V];
#pragma GCC unroll 32
  for (int j = 0; j < J; j++)
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) acc[j][v] = Simd::zero();
  if (lanes == V * W) {
    for (int64_t s = 0; s < k; s++) {
      Simd::V a[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; v++) a[v] = Simd::load(wide + s * step + v * W);
#pragma GCC unroll 32
      for (int j = 0; j < J; j++) {
        const Simd::V b = Simd::splat(narrow[s * stride + j0 + j]);
#pragma GCC unroll 8
        for (int v = 0; v < V; v++) acc[j][v] = Simd::fma(a[v], b, acc[j][v]);
      }
    }
  } else {
    // The edge: the lanes copied into a zero-padded vector block first.
    alignas(64) float edge[V * W];
    for (int64_t s = 0; s < k; s++) {
      for (int l = 0; l < V * W; l++) edge[l] = l < lanes ? wide[s * step + l] : 0.0f;
      Simd::V a[V];
      for (int v = 0; v < V; v++) a[v] = Simd::load(edge + v * W);
      for (int j = 0; j < J; j++) {
        const Simd::V b = Simd::splat(narrow[s * stride + j0 + j]);
        for (int v = 0; v < V; v++) acc[j][v] = Simd::fma(a[v], b, acc[j][v]);
      }
    }
  }
  alignas(64) float sums[V * W];
  for (int j = 0; j < J && j0 + j < p.narrowLanes; j++) {
    for (int v = 0; v < V; v++) Simd::store(sums + v * W, acc[j][v]);
    for (int64_t l = 0; l < lanes; l++) p.store(i0 + l, j0 + j, sums[l]);
  }
}

template <int NV>
void runRows(const NarrowProblem& p) {
  constexpr int R = kAccumulators / NV;
  const float* narrow = packNarrow(p, NV * W);
  parallelFor(ceilDiv(p.wideLanes, R), [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; b++) {
      const int64_t i0 = b * R;
      rowsTimesNarrow<NV>(p, narrow, i0, static_cast<int>(std::min<int64_t>(R, p.wideLanes - i0)));
    }
  });
}

void runColumns(const NarrowProblem& p) {
  // Narrow lanes in groups of 8 (4 for the last group when that covers it).
  constexpr int J = 8;
  constexpr int lanesPerBlock = std::max(1, kAccumulators / J) * W;
  const int stride = static_cast<int>(ceilDiv(p.narrowLanes, 4) * 4);
  const float* narrow = packNarrow(p, stride);
  const int64_t blocks = ceilDiv(p.wideLanes, lanesPerBlock);
  const int groups = static_cast<int>(ceilDiv(p.narrowLanes, J));
  parallelFor(blocks * groups, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      const int64_t i0 = (t / groups) * lanesPerBlock;
      const int j0 = static_cast<int>(t % groups) * J;
      const int64_t lanes = std::min<int64_t>(lanesPerBlock, p.wideLanes - i0);
      if (p.narrowLanes - j0 <= 4) narrowTimesColumns<4>(p, narrow, stride, i0, lanes, j0);
      else narrowTimesColumns<J>(p, narrow, stride, i0, lanes, j0);
    }
  });
}

}  // namespace

bool multiplyNarrow(const GemmCall& g) {
  if (g.a.dtype != kF32 || g.b.dtype != kF32) return false;
  const bool narrowIsN = g.n <= kNarrowMaxLanes;
  if (!narrowIsN && g.m > kNarrowMaxLanes) return false;
  const NarrowProblem p{g,
                        narrowIsN ? g.a : g.b,
                        narrowIsN ? g.b : g.a,
                        narrowIsN ? g.m : g.n,
                        static_cast<int>(narrowIsN ? g.n : g.m),
                        narrowIsN};
  if (p.wide.stepStride == 1) {
    const int nv = static_cast<int>(ceilDiv(p.narrowLanes, W));
    if (nv == 1) runRows<1>(p);
    else if (nv == 2) runRows<2>(p);
    else if (nv == 3) runRows<3>(p);
    else runRows<4>(p);
    return true;
  }
  if (p.wide.laneStride == 1) {
    runColumns(p);
    return true;
  }
  return false;
}

}  // namespace lf::gemm
