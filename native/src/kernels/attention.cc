// Causal grouped-query attention, forward and flash-style backward (src/engine/cpu/assembly/
// attention.ts). Keys go in blocks of four visible ones, as in the wasm kernels, so the online
// softmax rescales at the same keys; the rows of length D run at the build's full vector width.
#include "lib/simd.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernel.h"
#include "lib/args.h"
#include "lib/math.h"
#include "lib/rows.h"

namespace {

using lf::v4;

/** Which keys a query sees: keys <= its position, unmasked, in its segment, inside the window. */
struct Visibility {
  const int32_t* maskRow;  // nullptr: no key mask
  const int32_t* segRow;   // nullptr: no segment ids
  int window;              // 0: no sliding window

  /** Next key >= j visible to the query at `pos` among keys <= last, or last + 1. */
  int next(int j, int last, int32_t querySeg) const {
    for (; j <= last; j++) {
      if (maskRow && maskRow[j] == 0) continue;
      if (!segRow || segRow[j] == querySeg) return j;
    }
    return last + 1;
  }

  /** The first key a query at `pos` may see: 0, or pos − window + 1 in a sliding-window layer. */
  int first(int pos) const { return window > 0 ? std::max(0, pos - window + 1) : 0; }

  int32_t segmentOf(int pos) const { return segRow ? segRow[pos] : 0; }
};

/** Four visible keys j[0..3] <= last, from j[0]; missing ones (past `last`) repeat key j[0]. */
struct KeyBlock {
  int j[4];
  int64_t offset[4];  // of each key's row from its head, in floats (the repeated key's if missing)

  KeyBlock(const Visibility& visible, int j0, int last, int32_t querySeg, int64_t keyStride) {
    j[0] = j0;
    for (int lane = 1; lane < 4; lane++) j[lane] = visible.next(j[lane - 1] + 1, last, querySeg);
    for (int lane = 0; lane < 4; lane++) offset[lane] = (j[lane] <= last ? j[lane] : j0) * keyStride;
  }

  /** q . each key, times scale; -inf (probability 0) in the missing lanes. */
  v4 scores(const float* qRow, const float* kHead, int last, int D, float scale) const {
    v4 s = lf::dot4(qRow, kHead + offset[0], kHead + offset[1], kHead + offset[2],
                    kHead + offset[3], D) *
           scale;
    for (int lane = 1; lane < 4; lane++)
      if (j[lane] > last) s[lane] = -INFINITY;
    return s;
  }

  void accumulate(float* acc, v4 weights, const float* head, int D) const {
    lf::accumulate4(acc, weights, head + offset[0], head + offset[1], head + offset[2],
                    head + offset[3], D);
  }
};

/**
 * Backward of one query row over its visible keys in [first, last]: recomputes P = exp(S - lse),
 * dS = P * (dP - delta) with dP = dout . v, then adds dS * k into dqRow and dS * q, P * dout into
 * the key rows of dkHead / dvHead. A null dqRow or dkHead skips that half. Padded lanes of a key
 * block have P = dS = 0 and update nothing.
 */
void backwardRow(const float* qRow, const float* doRow, float* dqRow, float rowLse, float rowDelta,
                 const float* kHead, const float* vHead, float* dkHead, float* dvHead,
                 int64_t keyStride, int first, int last, const Visibility& visible,
                 int32_t querySeg, int D, float scale) {
  for (int j0 = visible.next(first, last, querySeg); j0 <= last;) {
    const KeyBlock block(visible, j0, last, querySeg, keyStride);
    const v4 probs = lf::expv(block.scores(qRow, kHead, last, D, scale) - rowLse);
    const v4 dProbs = lf::dot4(doRow, vHead + block.offset[0], vHead + block.offset[1],
                               vHead + block.offset[2], vHead + block.offset[3], D);
    const v4 dScores = probs * (dProbs - rowDelta) * scale;
    if (dqRow) block.accumulate(dqRow, dScores, kHead, D);
    if (dkHead) {
      for (int lane = 0; lane < 4; lane++) {
        if (block.j[lane] > last) break;
        lf::axpyRow(dkHead + block.offset[lane], dScores[lane], qRow, D);
        lf::axpyRow(dvHead + block.offset[lane], probs[lane], doRow, D);
      }
    }
    j0 = visible.next(block.j[3] + 1, last, querySeg);
  }
}

/** Zeroes rows [first, last] of one kv head's dk and dv. */
void zeroKeyRows(float* dkHead, float* dvHead, int64_t keyStride, int first, int last, int D) {
  for (int64_t j = first; j <= last; j++) {
    lf::fillZero(dkHead + j * keyStride, D);
    lf::fillZero(dvHead + j * keyStride, D);
  }
}

/** The training layout's arguments shared by the three backward kernels (Tq = Tk = kvCap = T). */
struct BackwardArgs {
  const float *q, *k, *v, *out, *lse, *dout;
  int B, T, H, KVH, D;
  float scale;
  int window;

  int group() const { return H / KVH; }
  int64_t keyStride() const { return static_cast<int64_t>(KVH) * D; }
  /** Offset of kv head `kvh`'s row 0 in batch row b. */
  int64_t headOffset(int b, int kvh) const { return (static_cast<int64_t>(b) * T * KVH + kvh) * D; }
  /** Offset of query (b, i, h)'s row in q / out / dout / dq. */
  int64_t rowOffset(int b, int i, int h) const {
    return ((static_cast<int64_t>(b) * T + i) * H + h) * D;
  }
  Visibility visibility(const int32_t* keyMask, const int32_t* segIds, int b) const {
    const int64_t row = static_cast<int64_t>(b) * T;
    return {keyMask ? keyMask + row : nullptr, segIds ? segIds + row : nullptr, window};
  }

  /** backwardRow of query (b, i, h) over keys [first, last] of its kv head. */
  void row(int b, int h, int i, int first, int last, const Visibility& visible, float* dq,
           float* dk, float* dv) const {
    const int64_t r = rowOffset(b, i, h), head = headOffset(b, h / group());
    const float rowDelta = lf::dot(dout + r, out + r, D);
    backwardRow(q + r, dout + r, dq ? dq + r : nullptr, lse[(static_cast<int64_t>(b) * H + h) * T + i],
                rowDelta, k + head, v + head, dk ? dk + head : nullptr, dv ? dv + head : nullptr,
                keyStride(), first, last, visible, visible.segmentOf(i), D, scale);
  }
};

/** BackwardArgs from a kernel's arguments: q k v out lse dout at 0..5, the dimensions at `dims`. */
BackwardArgs backwardArgs(const double* a, int dims) {
  return {lf::ptr<const float>(a[0]), lf::ptr<const float>(a[1]), lf::ptr<const float>(a[2]),
          lf::ptr<const float>(a[3]), lf::ptr<const float>(a[4]), lf::ptr<const float>(a[5]),
          lf::argI32(a[dims]),        lf::argI32(a[dims + 1]),    lf::argI32(a[dims + 2]),
          lf::argI32(a[dims + 3]),    lf::argI32(a[dims + 4]),    lf::argF32(a[dims + 5]),
          lf::argI32(a[dims + 6])};
}

}  // namespace

/**
 * Flash-style forward, the query heads that share a kv head together. Work items
 * (b * KVH + kvh) * Tq + i: the `group` query rows of position i that read kv head kvh (the wasm
 * export's items are b * H + h; the results are the same). The rows see the same keys, so they go
 * through the same blocks of four visible keys side by side: each block's key and value rows are
 * read once for the whole group, and the rows' online softmaxes are independent chains the core
 * overlaps. One head at a time, a decoding step at 2000 cached keys read each kv head's 1 MB of
 * keys and values once per query head, more than a core's L2 holds, and each row waited on its
 * own previous block. Per row the arithmetic is the wasm kernel's, block for block. lse = +inf
 * (and a zero row) for a query that sees no key.
 */
LF_KERNEL(attentionForward, 16) {
  const float* q = lf::ptr<const float>(a[0]);
  const float* k = lf::ptr<const float>(a[1]);
  const float* v = lf::ptr<const float>(a[2]);
  float* out = lf::ptr<float>(a[3]);
  float* lse = lf::ptr<float>(a[4]);
  const int32_t* keyMask = lf::ptr<const int32_t>(a[5]);
  const int32_t* segIds = lf::ptr<const int32_t>(a[6]);
  const int Tq = lf::argI32(a[8]), Tk = lf::argI32(a[9]), kvCap = lf::argI32(a[10]);
  const int H = lf::argI32(a[11]), KVH = lf::argI32(a[12]), D = lf::argI32(a[13]);
  const float scale = lf::argF32(a[14]);
  const int window = lf::argI32(a[15]);
  const int group = H / KVH;
  const int64_t keyStride = static_cast<int64_t>(KVH) * D;
  // The running max and sum of each of the group's rows.
  std::vector<float> runMax(group), runSum(group);
  for (int64_t job = start; job < end; job++) {
    const int i = static_cast<int>(job % Tq);
    const int kvh = static_cast<int>(job / Tq % KVH), b = static_cast<int>(job / Tq / KVH);
    const int64_t head = (static_cast<int64_t>(b) * kvCap * KVH + kvh) * D;
    const float* kHead = k + head;
    const float* vHead = v + head;
    const int64_t maskRow = static_cast<int64_t>(b) * kvCap;
    const Visibility visible{keyMask ? keyMask + maskRow : nullptr,
                             segIds ? segIds + maskRow : nullptr, window};
    const int pos = Tk - Tq + i;
    const int32_t querySeg = visible.segmentOf(pos);
    // Row g of the group (query head kvh * group + g at position i), in q and out.
    const int64_t firstRow = ((static_cast<int64_t>(b) * Tq + i) * H + kvh * group) * D;
    lf::fillZero(out + firstRow, static_cast<int64_t>(group) * D);
    std::fill(runMax.begin(), runMax.end(), -INFINITY);
    std::fill(runSum.begin(), runSum.end(), 0.0f);
    for (int j0 = visible.next(visible.first(pos), pos, querySeg); j0 <= pos;) {
      const KeyBlock block(visible, j0, pos, querySeg, keyStride);
      for (int g = 0; g < group; g++) {
        float* oRow = out + firstRow + g * D;
        const v4 scores = block.scores(q + firstRow + g * D, kHead, pos, D, scale);
        const float blockMax = lf::hmax(scores);
        if (blockMax > runMax[g]) {
          const float correction = lf::expScalar(runMax[g] - blockMax);
          runSum[g] *= correction;
          lf::scaleInPlace(oRow, correction, D);
          runMax[g] = blockMax;
        }
        const v4 probs = lf::expv(scores - runMax[g]);
        runSum[g] += lf::hsum(probs);
        block.accumulate(oRow, probs, vHead, D);
      }
      j0 = visible.next(block.j[3] + 1, pos, querySeg);
    }
    for (int g = 0; g < group; g++) {
      float& rowLse = lse[(static_cast<int64_t>(b) * H + kvh * group + g) * Tq + i];
      if (runSum[g] == 0) {
        rowLse = INFINITY;  // no visible key: zero output, and exp(s - lse) = 0 backward
        continue;
      }
      lf::scaleInPlace(out + firstRow + g * D, 1 / runSum[g], D);
      rowLse = runMax[g] + static_cast<float>(lf::lnF64(runSum[g]));
    }
  }
  return NAN;
}

/**
 * Flash backward, dq, dk, dv overwritten. Work items: b * KVH + kvh; each owns the dk / dv rows of
 * its kv head and the dq rows of the query heads reading it, so jobs never share an output.
 */
LF_KERNEL(attentionBackward, 18) {
  const BackwardArgs args = backwardArgs(a, 11);
  float* dq = lf::ptr<float>(a[6]);
  float* dk = lf::ptr<float>(a[7]);
  float* dv = lf::ptr<float>(a[8]);
  const int32_t* keyMask = lf::ptr<const int32_t>(a[9]);
  const int32_t* segIds = lf::ptr<const int32_t>(a[10]);
  const int group = args.group();
  for (int64_t job = start; job < end; job++) {
    const int b = static_cast<int>(job / args.KVH), kvh = static_cast<int>(job % args.KVH);
    const int64_t head = args.headOffset(b, kvh);
    zeroKeyRows(dk + head, dv + head, args.keyStride(), 0, args.T - 1, args.D);
    const Visibility visible = args.visibility(keyMask, segIds, b);
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      for (int i = 0; i < args.T; i++) {
        lf::fillZero(dq + args.rowOffset(b, i, h), args.D);
        args.row(b, h, i, visible.first(i), i, visible, dq, dk, dv);
      }
    }
  }
  return NAN;
}

/**
 * dq half of the split backward (with attentionBackwardKeyValue), for when there are too few
 * (b, kv head) pairs to keep every thread busy. Work items: b * H + h.
 */
LF_KERNEL(attentionBackwardQuery, 16) {
  const BackwardArgs args = backwardArgs(a, 9);
  float* dq = lf::ptr<float>(a[6]);
  const int32_t* keyMask = lf::ptr<const int32_t>(a[7]);
  const int32_t* segIds = lf::ptr<const int32_t>(a[8]);
  for (int64_t job = start; job < end; job++) {
    const int b = static_cast<int>(job / args.H), h = static_cast<int>(job % args.H);
    const Visibility visible = args.visibility(keyMask, segIds, b);
    for (int i = 0; i < args.T; i++) {
      lf::fillZero(dq + args.rowOffset(b, i, h), args.D);
      args.row(b, h, i, visible.first(i), i, visible, dq, nullptr, nullptr);
    }
  }
  return NAN;
}

/**
 * dk / dv half of the split backward: each work item owns `keyBlock` key rows of one kv head and
 * walks the queries that can see them. Work items: (b * KVH + kvh) * ceil(T / keyBlock) + block.
 */
LF_KERNEL(attentionBackwardKeyValue, 18) {
  const BackwardArgs args = backwardArgs(a, 10);
  float* dk = lf::ptr<float>(a[6]);
  float* dv = lf::ptr<float>(a[7]);
  const int32_t* keyMask = lf::ptr<const int32_t>(a[8]);
  const int32_t* segIds = lf::ptr<const int32_t>(a[9]);
  const int keyBlock = lf::argI32(a[17]);
  const int group = args.group();
  const int blocks = (args.T + keyBlock - 1) / keyBlock;
  for (int64_t job = start; job < end; job++) {
    const int b = static_cast<int>(job / (static_cast<int64_t>(args.KVH) * blocks));
    const int kvh = static_cast<int>((job / blocks) % args.KVH);
    const int first = static_cast<int>(job % blocks) * keyBlock;
    const int last = std::min(args.T, first + keyBlock) - 1;
    zeroKeyRows(dk + args.headOffset(b, kvh), dv + args.headOffset(b, kvh), args.keyStride(),
                first, last, args.D);
    const Visibility visible = args.visibility(keyMask, segIds, b);
    // With a window, queries past last + window − 1 see none of this block's keys.
    const int lastQuery = args.window > 0 ? std::min(args.T, last + args.window) : args.T;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      for (int i = first; i < lastQuery; i++) {
        args.row(b, h, i, std::max(first, visible.first(i)), std::min(i, last), visible, nullptr,
                 dk, dv);
      }
    }
  }
  return NAN;
}
