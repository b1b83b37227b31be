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

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../kernel.h"
#include "lib/args.h"

using lf::madd;
using lf::splat;
using lf::vf;

namespace {

/** Weights decoded per step: 16 codes, 8 bytes of 4-bit codes. */
constexpr int kGroup = 16;
constexpr int kGroupVectors = kGroup / lf::kWidth;

/** Unsigned dwords of a vector's width (4-bit codes, 8 to a lane). */
typedef uint32_t vu __attribute__((vector_size(LF_WIDTH * 4)));

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

/**
 * The absmax of consecutive blocks from `block`: stored, or recovered from their nested 8-bit
 * codes (the nested block index advanced by counting, not dividing per block).
 */
class BlockScales {
 public:
  BlockScales(const QuantLayout& q, int64_t block) : q_(q), block_(block) {
    if (q.nested) {
      outer_ = block / q.nestedBlockSize;
      inOuter_ = block - outer_ * q.nestedBlockSize;
    }
  }

  float next() {
    const int64_t block = block_++;
    if (!q_.nested) return q_.absmax[block];
    const float product = q_.nestedTable[q_.absmaxCodes[block]] * q_.nestedAbsmax[outer_];
    if (++inOuter_ == q_.nestedBlockSize) {
      inOuter_ = 0;
      outer_++;
    }
    return product + q_.nestedOffset;
  }

 private:
  const QuantLayout& q_;
  int64_t block_;
  int64_t outer_ = 0, inOuter_ = 0;
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
  return q;
}

/** How a build turns codes into table values (chosen per call, fixed inside the loops). */
enum class CodeKind {
  kFourBit,      // 4-bit codes: a table of 16 held in registers
  kSignedBytes,  // int8 codes whose table is the signed bytes: widened and converted
  kLookup,       // any other table, one code at a time
};

/**
 * The weights' table values 16 codes at a time from flat element i (4-bit: i even), in element
 * order, for codes of kind K; with Scaled, weights are multiplied by postScale too (it is 1, an
 * exact no-op, for 4-bit formats). The table registers are loaded once per call.
 */
template <CodeKind K, bool Scaled>
struct Decoder {
  static constexpr CodeKind kKind = K;
  static constexpr bool kScaled = Scaled;
  const QuantLayout& q;
#if defined(__AVX512F__)
  __m512 table16;
#elif defined(__AVX2__)
  __m256 tableLow, tableHigh;
#endif

  explicit Decoder(const QuantLayout& layout) : q(layout) {
#if defined(__AVX512F__)
    if constexpr (K == CodeKind::kFourBit) table16 = _mm512_loadu_ps(q.table);
#elif defined(__AVX2__)
    if constexpr (K == CodeKind::kFourBit) {
      tableLow = _mm256_loadu_ps(q.table);
      tableHigh = _mm256_loadu_ps(q.table + 8);
    }
#endif
  }

#if defined(__AVX2__)
  /** table[idx & 15] per lane (4-bit decoders). */
  vf lookup(vu idx) const {
#if defined(__AVX512F__)
    return _mm512_permutexvar_ps(reinterpret_cast<__m512i>(idx), table16);
#else
    const __m256i i = reinterpret_cast<__m256i>(idx);
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(tableLow, i),
                            _mm256_permutevar8x32_ps(tableHigh, i),
                            _mm256_castsi256_ps(reinterpret_cast<__m256i>(idx << 28)));
#endif
  }
#endif

  Group tableValues(int64_t i) const {
    Group g;
#if defined(__AVX2__)
    const uint8_t* at = q.codes + (K == CodeKind::kFourBit ? static_cast<uint64_t>(i) >> 1 : i);
    if constexpr (K == CodeKind::kFourBit) {
      // Byte j widened to 64-bit lane j, made (byte >> 4) | byte << 32: its low dword's nibble is
      // element 2j, its high dword's low nibble element 2j + 1. Table permutes read only the low
      // bits of an index (8 entries: 3 bits; the blend takes bit 3, moved to the sign).
#if defined(__AVX512F__)
      const __m512i bytes = _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(at)));
      const __m512i idx = _mm512_or_si512(_mm512_srli_epi64(bytes, 4), _mm512_slli_epi64(bytes, 32));
      g.v[0] = _mm512_permutexvar_ps(idx, table16);
#else
      for (int h = 0; h < 2; h++) {
        const __m256i bytes = _mm256_cvtepu8_epi64(
            _mm_cvtsi32_si128(static_cast<int>(*reinterpret_cast<const uint32_t*>(at + 4 * h))));
        const __m256i idx =
            _mm256_or_si256(_mm256_srli_epi64(bytes, 4), _mm256_slli_epi64(bytes, 32));
        const __m256 fromLow = _mm256_permutevar8x32_ps(tableLow, idx);
        const __m256 fromHigh = _mm256_permutevar8x32_ps(tableHigh, idx);
        g.v[h] = _mm256_blendv_ps(fromLow, fromHigh,
                                  _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
      }
#endif
      return g;
    }
    if constexpr (K == CodeKind::kSignedBytes) {
#if defined(__AVX512F__)
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
      g.v[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
#else
      for (int h = 0; h < 2; h++) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(at + 8 * h));
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

/** body(decoder) with the Decoder for q's codes and postScale. */
template <class Body>
void withDecoder(const QuantLayout& q, Body&& body) {
  const auto scaled = [&](auto kind) {
    constexpr CodeKind K = decltype(kind)::value;
    if (q.postScale != 1)
      body(Decoder<K, true>(q));
    else
      body(Decoder<K, false>(q));
  };
  // Without a vector decoder in this build, every kind looks codes up.
  constexpr bool vectors = LF_WIDTH > 4;
  if (vectors && q.bits == 4)
    scaled(std::integral_constant<CodeKind, CodeKind::kFourBit>{});
  else if (vectors && q.bits == 8 && isSignedByteTable(q.table))
    scaled(std::integral_constant<CodeKind, CodeKind::kSignedBytes>{});
  else
    scaled(std::integral_constant<CodeKind, CodeKind::kLookup>{});
}

/** A group's place in a run of four, as a type: a consumer can index registers with it. */
template <int S>
using Step = std::integral_constant<int, S>;

/**
 * Walks the weights of flat elements [rowStart, rowStart + cols): group(k, weights, step) for 16
 * at a time from column k, single(k, weight) for the rest (an odd 4-bit start, block and row
 * ends).
 */
template <class D, class OnGroup, class OnSingle>
inline void forEachWeight(const D& decoder, int64_t rowStart, int64_t cols, OnGroup&& group,
                          OnSingle&& single) {
  const QuantLayout& q = decoder.q;
  const int64_t rowEnd = rowStart + cols;
  int64_t block = rowStart / q.blockSize;
  BlockScales scales(q, block);
  for (int64_t i = rowStart; i < rowEnd; block++) {
    const int64_t stretchEnd = std::min(rowEnd, (block + 1) * q.blockSize);
    const float scale = scales.next();
    if (q.bits == 4 && (i & 1) && i < stretchEnd) {
      single(i - rowStart, q.weight(i, scale));
      i++;
    }
    const vf scaleV = splat<vf>(scale), postV = splat<vf>(q.postScale);
    const auto weights = [&](int64_t at) {
      Group w = decoder.tableValues(at);
      for (int h = 0; h < kGroupVectors; h++) {
        w.v[h] = w.v[h] * scaleV;
        if constexpr (D::kScaled) w.v[h] = w.v[h] * postV;
      }
      return w;
    };
    // Four groups in a row, numbered at compile time (see Step).
    for (; i + 4 * kGroup <= stretchEnd; i += 4 * kGroup) {
      group(i - rowStart, weights(i), Step<0>{});
      group(i + kGroup - rowStart, weights(i + kGroup), Step<1>{});
      group(i + 2 * kGroup - rowStart, weights(i + 2 * kGroup), Step<2>{});
      group(i + 3 * kGroup - rowStart, weights(i + 3 * kGroup), Step<3>{});
    }
    for (; i + kGroup <= stretchEnd; i += kGroup) group(i - rowStart, weights(i), Step<0>{});
    for (; i < stretchEnd; i++) single(i - rowStart, q.weight(i, scale));
  }
}

/**
 * y[m, n] for R rows of x from row m0 (R ≤ 4, so the accumulators stay in registers) and W rows
 * [start, end): one pass over each row's codes per R rows of x.
 */
template <int R, class D>
void matmulRows(const D& decoder, const float* x, const float* bias, float* y, int m0,
                int64_t cols, int64_t firstRow, int64_t ldy, int64_t start, int64_t end) {
  const float* xr[R];
  for (int r = 0; r < R; r++) xr[r] = x + (m0 + r) * cols;
  // Independent sums per row of x, so that consecutive groups' FMAs do not wait on each other.
  constexpr int kChains = R == 1 ? 4 : R == 2 ? 2 : 1;
  for (int64_t n = start; n < end; n++) {
    vf acc[R][kChains][kGroupVectors] = {};
    float tail[R] = {};
    forEachWeight(
        decoder, (firstRow + n) * cols, cols,
        [&](int64_t k, const Group& w, auto step) {
          constexpr int c = decltype(step)::value % kChains;
          for (int r = 0; r < R; r++)
            for (int h = 0; h < kGroupVectors; h++)
              acc[r][c][h] = madd(lf::load<vf>(xr[r] + k + h * lf::kWidth), w.v[h], acc[r][c][h]);
        },
        [&](int64_t k, float w) {
          for (int r = 0; r < R; r++) tail[r] += xr[r][k] * w;
        });
    for (int r = 0; r < R; r++) {
      vf sum = {};
      for (int c = 0; c < kChains; c++)
        for (int h = 0; h < kGroupVectors; h++) sum += acc[r][c][h];
      float total = lf::hsum(sum) + tail[r];
      if (bias) total += bias[n];
      y[(m0 + r) * ldy + n] = total;
    }
  }
}

#if defined(__AVX2__)
/** Codes per step of the wide path: 8 nibbles in each dword of a vector. */
constexpr int kWideChunk = 8 * lf::kWidth;

/**
 * The element (from 8d) that lane d of the m-th table lookup of a step's load holds: the
 * lookup's index is the load's dword d shifted right by 4m (the table lookup reads only the low
 * 4 bits), i.e. nibble m of bytes 4d … 4d + 3, low nibble first; a byte's high nibble is the
 * earlier element.
 */
constexpr int kNibbleElement[8] = {1, 0, 3, 2, 5, 4, 7, 6};

/** The scales of a wide step over several blocks: lane d holds elements of block 8d / blockSize. */
inline vf stepScales(BlockScales& scales, int lanesPerBlock) {
#if defined(__AVX512F__)
  if (lanesPerBlock == 8) {  // blocks of 64: one insert instead of lane by lane
    const float first = scales.next();
    return _mm512_insertf32x8(_mm512_set1_ps(first), _mm256_set1_ps(scales.next()), 1);
  }
#endif
  vf scale;
  for (int lane = 0; lane < lf::kWidth; lane += lanesPerBlock) {
    const float blockScale = scales.next();
    for (int j = 0; j < lanesPerBlock; j++) scale[lane + j] = blockScale;
  }
  return scale;
}

/**
 * matmulRows for unscaled 4-bit rows of whole kWideChunk-column steps (every bitsandbytes 4-bit
 * projection whose width is a multiple of 128). Decoding is the shuffle unit's work, so it is
 * halved or better: 8 · kWidth codes from one load and 8 table lookups of shifted dwords, with no
 * widening; x is reordered once per call into the lanes' element order to match.
 */
template <int R, class D>
void matmulRowsWide(const D& decoder, const float* x, const float* bias, float* y, int m0,
                    int64_t cols, int64_t firstRow, int64_t ldy, int64_t start, int64_t end) {
  constexpr int W = lf::kWidth;
  const QuantLayout& q = decoder.q;
  std::vector<float> reordered(static_cast<size_t>(R * cols));
  for (int r = 0; r < R; r++)
    for (int64_t c = 0; c < cols; c += kWideChunk)
      for (int m = 0; m < 8; m++)
        for (int d = 0; d < W; d++)
          reordered[r * cols + c + W * m + d] = x[(m0 + r) * cols + c + 8 * d + kNibbleElement[m]];
  const int lanesPerBlock = static_cast<int>(q.blockSize / 8);
  for (int64_t n = start; n < end; n++) {
    vf acc[R][2] = {};  // even and odd lookups: two independent chains per row of x
    const int64_t rowStart = (firstRow + n) * cols;
    BlockScales scales(q, rowStart / q.blockSize);
    const uint8_t* codes = q.codes + rowStart / 2;
    vf scale = {};
    for (int64_t c = 0; c < cols; c += kWideChunk) {
      if (q.blockSize < kWideChunk)
        scale = stepScales(scales, lanesPerBlock);
      else if (c % q.blockSize == 0) {
        scale = splat<vf>(scales.next());
      }
      vu packed;
      std::memcpy(&packed, codes + c / 2, sizeof packed);
      const auto lookup = [&](auto m) {
        constexpr int kM = decltype(m)::value;
        const vf w = decoder.lookup(packed >> (4 * kM)) * scale;
        for (int r = 0; r < R; r++) {
          const float* xs = reordered.data() + r * cols + c + W * kM;
          acc[r][kM & 1] = madd(lf::load<vf>(xs), w, acc[r][kM & 1]);
        }
      };
      lookup(Step<0>{}), lookup(Step<1>{}), lookup(Step<2>{}), lookup(Step<3>{});
      lookup(Step<4>{}), lookup(Step<5>{}), lookup(Step<6>{}), lookup(Step<7>{});
    }
    for (int r = 0; r < R; r++) {
      float total = lf::hsum(acc[r][0] + acc[r][1]);
      if (bias) total += bias[n];
      y[(m0 + r) * ldy + n] = total;
    }
  }
}
#endif

/** y rows [0, rows) columns [start, end) of quantizedMatmul for R ≤ 4 rows of x from m0. */
template <int R, class D>
void matmulRowsOf(const D& d, const float* x, const float* bias, float* y, int m0, int64_t cols,
                  int64_t firstRow, int64_t ldy, int64_t start, int64_t end) {
#if defined(__AVX2__)
  if constexpr (D::kKind == CodeKind::kFourBit && !D::kScaled) {
    const int64_t block = d.q.blockSize;
    const bool blocksFit = block % kWideChunk == 0 || (kWideChunk % block == 0 && block % 8 == 0);
    if (cols % kWideChunk == 0 && cols % block == 0 && blocksFit) {
      matmulRowsWide<R>(d, x, bias, y, m0, cols, firstRow, ldy, start, end);
      return;
    }
  }
#endif
  matmulRows<R>(d, x, bias, y, m0, cols, firstRow, ldy, start, end);
}

}  // namespace

/** out rows [start, end) of the tile = rows firstRow + start … of the quantized [·, cols] matrix. */
LF_KERNEL(dequantizeRows, 15) {
  const QuantLayout q = layoutFrom(a, a + 9);
  float* out = lf::ptr<float>(a[5]);
  const int64_t firstRow = lf::argU32(a[6]);
  const int64_t cols = lf::argU32(a[8]);
  withDecoder(q, [&](const auto& decoder) {
    for (int64_t r = start; r < end; r++) {
      float* dst = out + r * cols;
      forEachWeight(
          decoder, (firstRow + r) * cols, cols,
          [&](int64_t k, const Group& w, auto) {
            for (int h = 0; h < kGroupVectors; h++) lf::store(dst + k + h * lf::kWidth, w.v[h]);
          },
          [&](int64_t k, float w) { dst[k] = w; });
    }
  });
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
  withDecoder(q, [&](const auto& d) {
    for (int m = 0; m < rows;) {
      const int take = std::min(rows - m, 4);
      switch (take) {
        case 4: matmulRowsOf<4>(d, x, bias, y, m, cols, firstRow, ldy, start, end); break;
        case 3: matmulRowsOf<3>(d, x, bias, y, m, cols, firstRow, ldy, start, end); break;
        case 2: matmulRowsOf<2>(d, x, bias, y, m, cols, firstRow, ldy, start, end); break;
        default: matmulRowsOf<1>(d, x, bias, y, m, cols, firstRow, ldy, start, end);
      }
      m += take;
    }
  });
  return NAN;
}

namespace {

/** quantizeRows' `mode` param, in the spec's order. */
enum class QuantizeMode { kNearest = 0, kSigned = 1, kInt8 = 2 };

/** The values, table and outputs of one quantizeRows call. */
struct BlockQuantizer {
  const float* xF32;      // source f32, or null
  const uint16_t* xBf16;  // source bf16, or null
  const float* bounds;
  const int32_t* codeOf;
  uint8_t* codes;
  float* absmax;
  int64_t n;
  int64_t blockSize;
  int bits;
  QuantizeMode mode;
  float offset;
  int boundCount;

  /** f32(x_i − offset), bf16 widened exactly. */
  float value(int64_t i) const {
    float x;
    if (xBf16) {
      const uint32_t word = static_cast<uint32_t>(xBf16[i]) << 16;
      std::memcpy(&x, &word, 4);
    } else {
      x = xF32[i];
    }
    return x - offset;
  }

  /** The code of a scaled value s (already clamped to [-1, 1]) of a table format. */
  int tableCode(float s) const {
    const float magnitude = mode == QuantizeMode::kSigned ? std::fabs(s) : s;
    int below = 0;
    for (int k = 0; k < boundCount; k++) below += bounds[k] < magnitude;
    const int code = codeOf[below];
    return mode == QuantizeMode::kSigned && s < 0 ? code | 8 : code;
  }

  /** Codes of elements [first, end) scaled by `inverse` into out[0 …), kWidth lanes at a time. */
  void tableCodes(int64_t first, int64_t end, float inverse, uint8_t* out) const {
    const vf one = splat<vf>(1.0f), minusOne = splat<vf>(-1.0f);
    int64_t i = first;
    for (; i + lf::kWidth <= end; i += lf::kWidth) {
      vf v;
      for (int l = 0; l < lf::kWidth; l++) v[l] = value(i + l);
      const vf s = lf::pmin(one, lf::pmax(minusOne, v * splat<vf>(inverse)));
      vf magnitude = s;
      if (mode == QuantizeMode::kSigned)
        magnitude = reinterpret_cast<vf>(reinterpret_cast<lf::vfi>(s) & 0x7fffffff);
      lf::vfi below = {};
      for (int k = 0; k < boundCount; k++) below -= splat<vf>(bounds[k]) < magnitude;
      for (int l = 0; l < lf::kWidth; l++) {
        const int code = codeOf[below[l]];
        out[i - first + l] = mode == QuantizeMode::kSigned && s[l] < 0 ? code | 8 : code;
      }
    }
    for (; i < end; i++) {
      const float s = std::min(1.0f, std::max(-1.0f, value(i) * inverse));
      out[i - first] = static_cast<uint8_t>(tableCode(s));
    }
  }

  void block(int64_t b, std::vector<uint8_t>& scratch) const {
    const int64_t first = b * blockSize;
    const int64_t end = std::min(n, first + blockSize);
    float max = 0;
    for (int64_t i = first; i < end; i++) max = std::max(max, std::fabs(value(i)));
    absmax[b] = max;
    if (mode == QuantizeMode::kInt8) {
      const float scale = max == 0 ? 0.0f : 127.0f / max;
      for (int64_t i = first; i < end; i++)
        codes[i] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(value(i) * scale)));
      return;
    }
    // bnb never divides by a zero absmax: an all-zero block scales by 1 / 1e-38.
    const float inverse = 1.0f / std::max(max, 1e-38f);
    uint8_t* out = bits == 8 ? codes + first : (scratch.resize(end - first), scratch.data());
    tableCodes(first, end, inverse, out);
    if (bits == 8) return;
    for (int64_t i = first; i < end; i += 2) {
      const int high = out[i - first], low = i + 1 < end ? out[i + 1 - first] : 0;
      codes[i >> 1] = static_cast<uint8_t>(high << 4 | low);
    }
  }
};

}  // namespace

/**
 * Blocks [start, end) of a flat tensor quantized as engine/quant/quantize.ts does (the
 * quantizeRows spec): absmax per block, then codes from the table's midpoints (counted, so a tie
 * goes to the lower entry) or int8 rounding. Arguments: x, bounds, codeOf, codes, absmax, then n,
 * blockSize, bits, mode, offset, source (0 f32, 1 bf16).
 */
LF_KERNEL(quantizeRows, 11) {
  const bool bf16 = lf::argU32(a[10]) == 1;
  BlockQuantizer q;
  q.xF32 = bf16 ? nullptr : lf::ptr<const float>(a[0]);
  q.xBf16 = bf16 ? lf::ptr<const uint16_t>(a[0]) : nullptr;
  q.bounds = lf::ptr<const float>(a[1]);
  q.codeOf = lf::ptr<const int32_t>(a[2]);
  q.codes = lf::ptr<uint8_t>(a[3]);
  q.absmax = lf::ptr<float>(a[4]);
  q.n = lf::argU32(a[5]);
  q.blockSize = lf::argU32(a[6]);
  q.bits = static_cast<int>(lf::argU32(a[7]));
  q.mode = static_cast<QuantizeMode>(lf::argU32(a[8]));
  q.offset = lf::argF32(a[9]);
  // Midpoints of the table: 2^bits − 1 entries, or of its magnitudes (signed) 2^(bits−1) − 1.
  q.boundCount = q.mode == QuantizeMode::kSigned ? (1 << (q.bits - 1)) - 1 : (1 << q.bits) - 1;
  std::vector<uint8_t> scratch;
  for (int64_t b = start; b < end; b++) q.block(b, scratch);
  return NAN;
}
