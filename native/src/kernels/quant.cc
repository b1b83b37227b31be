// Quantized frozen weights (src/engine/cpu/assembly/quant.ts): rows of a bitsandbytes NF4 / FP4 /
// int8 matrix dequantized into an f32 tile, or multiplied by a few rows of x straight from the
// codes. A weight is f32(f32(table[code] · absmax) · postScale), two separate multiplies as in the
// wasm export, so dequantizeRows gives its bits exactly; quantizedMatmul sums the same weights
// with fused multiply-adds over this build's vector width (a few f32 ulps from wasm's order).
//
// Codes are decoded 16 at a time: AVX-512 looks the 16-entry table up with one permute of a
// register, AVX2 with two 8-entry permutes and a blend on the code's bit 3; int8 codes whose table
// is the signed bytes (always, for loraforge's int8) are widened and converted. Other builds and
// tables look each code up.
#include "lib/simd.h"

#include <cmath>

#include "../kernel.h"
#include "lib/args.h"

using lf::madd;
using lf::splat;
using lf::vf;

namespace {

/** Weights decoded per step: 16 codes, 8 bytes of 4-bit codes. */
constexpr int kGroup = 16;
constexpr int kGroupVectors = kGroup / lf::kWidth;

/** Sixteen consecutive weights. */
struct Group {
  vf v[kGroupVectors];
};

/** The quantized matrix and its params, as both exports receive them. */
struct QuantLayout {
  const uint8_t* codes;
  const float* absmax;
  const uint8_t* absmaxCodes;  // nested: one code byte per block
  const float* nestedAbsmax;
  const float* table;
  const float* nestedTable;
  int bits;
  int64_t blockSize;
  bool nested;
  int64_t nestedBlockSize;
  float nestedOffset;
  float postScale;
  /** int8 with table[b] == (int8_t)b: codes convert instead of looking up. */
  bool signedByteTable;

  /** The absmax of `block`: stored, or recovered from its nested 8-bit code. */
  float blockScale(int64_t block) const {
    if (!nested) return absmax[block];
    const float outer = nestedAbsmax[block / nestedBlockSize];
    const float product = nestedTable[absmaxCodes[block]] * outer;
    return product + nestedOffset;
  }

  /** The code of flat element i (4-bit: the first element of a byte in its high nibble). */
  int code(int64_t i) const {
    if (bits == 8) return codes[i];
    const int byte = codes[i >> 1];
    return i & 1 ? byte & 15 : byte >> 4;
  }

  float weight(int64_t i, float scale) const {
    const float value = table[code(i)] * scale;
    return value * postScale;
  }
};

bool isSignedByteTable(const float* table) {
  for (int b = 0; b < 256; b++)
    if (table[b] != static_cast<float>(static_cast<int8_t>(b))) return false;
  return true;
}

/**
 * The layout from the arguments: `buffers` at codes (codes, absmax, nestedAbsmax, table,
 * nestedTable), `p` at bits (bits, blockSize, nested, nestedBlockSize, nestedOffset, postScale).
 */
QuantLayout layoutFrom(const double* buffers, const double* p) {
  QuantLayout q;
  q.codes = lf::ptr<const uint8_t>(buffers[0]);
  q.absmax = lf::ptr<const float>(buffers[1]);
  q.absmaxCodes = lf::ptr<const uint8_t>(buffers[1]);
  q.nestedAbsmax = lf::ptr<const float>(buffers[2]);
  q.table = lf::ptr<const float>(buffers[3]);
  q.nestedTable = lf::ptr<const float>(buffers[4]);
  q.bits = static_cast<int>(lf::argU32(p[0]));
  q.blockSize = lf::argU32(p[1]);
  q.nested = lf::argI32(p[2]) != 0;
  q.nestedBlockSize = lf::argU32(p[3]);
  q.nestedOffset = lf::argF32(p[4]);
  q.postScale = lf::argF32(p[5]);
  q.signedByteTable = q.bits == 8 && isSignedByteTable(q.table);
  return q;
}

/**
 * The table values of the 16 codes from flat element i (4-bit: i even), in element order. The
 * per-ISA table registers are built once per call (Decoder's constructor).
 */
struct Decoder {
  const QuantLayout& q;
#if defined(__AVX512F__)
  __m512 table16;
#elif defined(__AVX2__)
  __m256 tableLow, tableHigh;
#endif

  explicit Decoder(const QuantLayout& layout) : q(layout) {
#if defined(__AVX512F__)
    if (q.bits == 4) table16 = _mm512_loadu_ps(q.table);
#elif defined(__AVX2__)
    if (q.bits == 4) {
      tableLow = _mm256_loadu_ps(q.table);
      tableHigh = _mm256_loadu_ps(q.table + 8);
    }
#endif
  }

  Group tableValues(int64_t i) const {
    Group g;
#if defined(__AVX2__)
    if (q.bits == 4) {
      // Byte j holds elements 2j (high nibble) and 2j + 1: interleave the nibbles into order.
      const __m128i packed = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q.codes + i / 2));
      const __m128i low = _mm_set1_epi8(15);
      const __m128i ordered = _mm_unpacklo_epi8(
          _mm_and_si128(_mm_srli_epi16(packed, 4), low), _mm_and_si128(packed, low));
#if defined(__AVX512F__)
      g.v[0] = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(ordered), table16);
#else
      for (int h = 0; h < 2; h++) {
        const __m256i idx = _mm256_cvtepu8_epi32(_mm_srli_si128(ordered, 8 * h));
        const __m256 fromLow = _mm256_permutevar8x32_ps(tableLow, idx);
        const __m256 fromHigh = _mm256_permutevar8x32_ps(tableHigh, idx);
        g.v[h] = _mm256_blendv_ps(fromLow, fromHigh,
                                  _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
      }
#endif
      return g;
    }
    if (q.signedByteTable) {
#if defined(__AVX512F__)
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q.codes + i));
      g.v[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
#else
      for (int h = 0; h < 2; h++) {
        const __m128i bytes =
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q.codes + i + 8 * h));
        g.v[h] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
      }
#endif
      return g;
    }
#endif
    float values[kGroup];
    for (int j = 0; j < kGroup; j++) values[j] = q.table[q.code(i + j)];
    for (int h = 0; h < kGroupVectors; h++) g.v[h] = lf::load<vf>(values + h * lf::kWidth);
    return g;
  }
};

/**
 * Walks the weights of flat elements [rowStart, rowStart + cols): group(k, weights) for 16 at a
 * time from column k, single(k, weight) for the rest (an odd 4-bit start, block and row ends).
 */
template <class OnGroup, class OnSingle>
inline void forEachWeight(const Decoder& decoder, int64_t rowStart, int64_t cols, OnGroup&& group,
                          OnSingle&& single) {
  const QuantLayout& q = decoder.q;
  const int64_t rowEnd = rowStart + cols;
  const bool scaled = q.postScale != 1;  // × 1 is exact: skipped
  for (int64_t i = rowStart; i < rowEnd;) {
    const int64_t block = i / q.blockSize;
    const int64_t stretchEnd = std::min(rowEnd, (block + 1) * q.blockSize);
    const float scale = q.blockScale(block);
    if (q.bits == 4 && (i & 1) && i < stretchEnd) {
      single(i - rowStart, q.weight(i, scale));
      i++;
    }
    const vf scaleV = splat<vf>(scale), postV = splat<vf>(q.postScale);
    for (; i + kGroup <= stretchEnd; i += kGroup) {
      Group w = decoder.tableValues(i);
      for (int h = 0; h < kGroupVectors; h++) {
        w.v[h] = w.v[h] * scaleV;
        if (scaled) w.v[h] = w.v[h] * postV;
      }
      group(i - rowStart, w);
    }
    for (; i < stretchEnd; i++) single(i - rowStart, q.weight(i, scale));
  }
}

/**
 * y[m, n] for R rows of x from row m0 (R ≤ 4, so the accumulators stay in registers) and W rows
 * [start, end): one pass over each row's codes per R rows of x.
 */
template <int R>
void matmulRows(const Decoder& decoder, const float* x, const float* bias, float* y, int m0,
                int64_t cols, int64_t firstRow, int64_t ldy, int64_t start, int64_t end) {
  const float* xr[R];
  for (int r = 0; r < R; r++) xr[r] = x + (m0 + r) * cols;
  for (int64_t n = start; n < end; n++) {
    vf acc[R][kGroupVectors] = {};
    float tail[R] = {};
    forEachWeight(
        decoder, (firstRow + n) * cols, cols,
        [&](int64_t k, const Group& w) {
          for (int r = 0; r < R; r++)
            for (int h = 0; h < kGroupVectors; h++)
              acc[r][h] = madd(lf::load<vf>(xr[r] + k + h * lf::kWidth), w.v[h], acc[r][h]);
        },
        [&](int64_t k, float w) {
          for (int r = 0; r < R; r++) tail[r] += xr[r][k] * w;
        });
    for (int r = 0; r < R; r++) {
      vf sum = acc[r][0];
      for (int h = 1; h < kGroupVectors; h++) sum += acc[r][h];
      float total = lf::hsum(sum) + tail[r];
      if (bias) total += bias[n];
      y[(m0 + r) * ldy + n] = total;
    }
  }
}

}  // namespace

/** out rows [start, end) of the tile = rows firstRow + start … of the quantized [·, cols] matrix. */
LF_KERNEL(dequantizeRows, 15) {
  const QuantLayout q = layoutFrom(a, a + 9);
  float* out = lf::ptr<float>(a[5]);
  const int64_t firstRow = lf::argU32(a[6]);
  const int64_t cols = lf::argU32(a[8]);
  const Decoder decoder(q);
  for (int64_t r = start; r < end; r++) {
    float* dst = out + r * cols;
    forEachWeight(
        decoder, (firstRow + r) * cols, cols,
        [&](int64_t k, const Group& w) {
          for (int h = 0; h < kGroupVectors; h++) lf::store(dst + k + h * lf::kWidth, w.v[h]);
        },
        [&](int64_t k, float w) { dst[k] = w; });
  }
  return NAN;
}

/**
 * y rows [0, rows) columns [start, end) = x · rows firstRow + start … of the quantized [·, cols]
 * W (+ bias). Work items: rows of W (a decoded GEMV streams each row's codes once per 4 rows of x).
 */
LF_KERNEL(quantizedMatmul, 19) {
  const float* x = lf::ptr<const float>(a[0]);
  const float* bias = lf::ptr<const float>(a[6]);
  float* y = lf::ptr<float>(a[7]);
  const int rows = lf::argI32(a[8]);
  const int64_t cols = lf::argU32(a[9]);
  const int64_t firstRow = lf::argU32(a[10]);
  const int64_t ldy = lf::argU32(a[12]);
  const QuantLayout q = layoutFrom(a + 1, a + 13);
  const Decoder decoder(q);
  for (int m = 0; m < rows;) {
    const int left = rows - m;
    const int take = left >= 4 ? 4 : left;
    switch (take) {
      case 4: matmulRows<4>(decoder, x, bias, y, m, cols, firstRow, ldy, start, end); break;
      case 3: matmulRows<3>(decoder, x, bias, y, m, cols, firstRow, ldy, start, end); break;
      case 2: matmulRows<2>(decoder, x, bias, y, m, cols, firstRow, ldy, start, end); break;
      default: matmulRows<1>(decoder, x, bias, y, m, cols, firstRow, ldy, start, end);
    }
    m += take;
  }
  return NAN;
}
