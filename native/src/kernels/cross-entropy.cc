// The chunked cross-entropy of the fused LM-head loss (src/engine/cpu/assembly/cross-entropy.ts).
// Work items: rows.
#include "lib/simd.h"

#include <cmath>

#include "../kernel.h"
#include "lib/args.h"
#include "lib/math.h"
#include "lib/rows.h"

namespace {

using lf::splat;
using lf::vf;

float rowMax(const float* row, int64_t n) {
  vf acc = splat<vf>(-INFINITY);
  lf::forVectors(0, n, [&](int64_t i, auto lanes) {
    acc = lf::pmax(acc, lanes.load(row + i, -INFINITY));
  });
  return lf::hmax(acc);
}

/** The sum of exp(row - shift), the exponentials stored in place. */
float sumExpInPlace(float* row, int64_t n, float shift) {
  vf acc = {};
  lf::forVectors(0, n, [&](int64_t i, auto lanes) {
    const vf e = lf::expv(lanes.load(row + i) - shift);
    lanes.store(row + i, e);
    acc += lanes.only(e);
  });
  return lf::hsum(acc);
}

/** targets[r] - colOffset when it falls in this chunk's [0, cols), else -1. */
inline int64_t targetColumn(const int32_t* targets, int64_t r, int32_t colOffset, int32_t cols) {
  const uint32_t t = static_cast<uint32_t>(targets[r]) - static_cast<uint32_t>(colOffset);
  return t < static_cast<uint32_t>(cols) ? static_cast<int64_t>(t) : -1;
}

}  // namespace

/**
 * The online softmax over one vocabulary chunk: updates the running max and sum, stores
 * exp(logit - newMax) back in place (the next GEMM accumulates those times the head rows into
 * acc), and rescales acc's row by exp(oldMax - newMax) when the max moved. acc = 0 skips the
 * accumulator.
 */
LF_KERNEL(ceOnlineChunk, 10) {
  float* logits = lf::ptr<float>(a[0]);
  const int32_t* targets = lf::ptr<const int32_t>(a[1]);
  float* runMax = lf::ptr<float>(a[2]);
  float* runSum = lf::ptr<float>(a[3]);
  float* tgtLogit = lf::ptr<float>(a[4]);
  float* acc = lf::ptr<float>(a[5]);
  const int32_t cols = lf::argI32(a[7]);
  const int32_t colOffset = lf::argI32(a[8]);
  const int32_t accCols = lf::argI32(a[9]);
  for (int64_t r = start; r < end; r++) {
    float* row = logits + r * cols;
    const int64_t t = targetColumn(targets, r, colOffset, cols);
    if (t >= 0) tgtLogit[r] = row[t];
    const float oldMax = runMax[r];
    const float chunkMax = rowMax(row, cols);
    const float newMax = oldMax < chunkMax ? chunkMax : oldMax;
    const float rescale = oldMax == -INFINITY ? 0 : lf::expScalar(oldMax - newMax);
    runSum[r] = runSum[r] * rescale + sumExpInPlace(row, cols, newMax);
    runMax[r] = newMax;
    if (acc && rescale != 1) lf::scaleInPlace(acc + r * accCols, rescale, accCols);
  }
  return NAN;
}

/**
 * In place: logits[r, c] = rowScale[r] * (exp(logits[r, c] - lse[r]) - onehot(targets[r])).
 * Rows with rowScale 0 (unsupervised) become exact zeros.
 */
LF_KERNEL(ceChunkBackward, 7) {
  float* logits = lf::ptr<float>(a[0]);
  const int32_t* targets = lf::ptr<const int32_t>(a[1]);
  const float* lse = lf::ptr<const float>(a[2]);
  const float* rowScale = lf::ptr<const float>(a[3]);
  const int32_t cols = lf::argI32(a[5]);
  const int32_t colOffset = lf::argI32(a[6]);
  for (int64_t r = start; r < end; r++) {
    float* row = logits + r * cols;
    const float s = rowScale[r];
    if (s == 0) {
      lf::fillZero(row, cols);
      continue;
    }
    const vf lseV = splat<vf>(lse[r]), sv = splat<vf>(s);
    lf::forVectors(0, cols, [&](int64_t i, auto lanes) {
      lanes.store(row + i, sv * lf::expv(lanes.load(row + i) - lseV));
    });
    const int64_t t = targetColumn(targets, r, colOffset, cols);
    if (t >= 0) row[t] = row[t] - s;
  }
  return NAN;
}
