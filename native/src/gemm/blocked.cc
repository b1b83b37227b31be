// The blocked GEMM: op(A) packed once per call into MR-row panels (shared by all threads), then
// tasks over blocks of C's columns (and rows when C is narrow), each packing its own columns of
// op(B) per k block into NR-column panels and running the micro-kernel over every panel pair.
// Loop order inside a task: k block -> A panel (stays in L1) -> B panels (the block stays in L2).
#include <algorithm>

#include "../kernel.h"
#include "gemm.h"
#include "microkernel.h"
#include "pack.h"
#include "scratch.h"

namespace lf::gemm {
namespace {

/** Exact products: f32 panels, the variant's f32 register tile. */
struct F32Flavor {
  using Packed = float;
  static constexpr int MR = kTileRows, NR = kTileVectors * Simd::W;
  /** k per block at most (blocks are made equal, about this size). */
  static constexpr int KC = 384;
  static int packedSteps(int kc) { return kc; }
  static void pack(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                   int steps, Packed* dst) {
    packF32(x, lane0, lanes, width, step0, steps, dst);
  }
  static void multiply(int steps, const Packed* ap, const Packed* bp, float* tile) {
    multiplyPanels<MR, kTileVectors>(steps, ap, bp, tile);
  }
};

#if defined(__AVX512BF16__)
/** bf16 pair products (VDPBF16PS): half the bytes per k step, so twice the k per block. */
struct PairFlavor {
  using Packed = uint32_t;
  static constexpr int MR = 14, NR = 32;
  static constexpr int KC = 768;
  static int packedSteps(int kc) { return (kc + 1) / 2; }
  static void pack(const StridedView& x, size_t lane0, int lanes, int width, size_t step0,
                   int steps, Packed* dst) {
    packPairs(x, lane0, lanes, width, step0, steps, dst);
  }
  static void multiply(int steps, const Packed* ap, const Packed* bp, float* tile) {
    multiplyPairPanels<MR>(steps, ap, bp, tile);
  }
};
#endif

/** Columns per task at most: a k block of them (KC x NC packed) stays in L2. */
constexpr int64_t kMaxTaskColumns = 512;
/** Packed A is made for at most this many bytes of rows at a time (then the next rows). */
constexpr size_t kMaxPackedABytes = size_t{32} << 20;

// Packed A is shared by the threads of one call; calls come one at a time from the JavaScript
// thread, so one buffer serves them all.
Scratch& packedAScratch() {
  static Scratch scratch;
  return scratch;
}

template <class F>
class Blocked {
 public:
  explicit Blocked(const GemmCall& g) : g_(g), kc_(equalBlocks(g.k)) {}

  void run() {
    const int64_t rowBytes = ceilDiv(g_.k, kc_) * F::packedSteps(kc_) * sizeof(typename F::Packed);
    const int64_t passRows =
        std::max<int64_t>(F::MR, static_cast<int64_t>(kMaxPackedABytes / rowBytes) / F::MR * F::MR);
    for (int64_t i0 = 0; i0 < g_.m; i0 += passRows) pass(i0, std::min(passRows, g_.m - i0));
  }

 private:
  using Packed = typename F::Packed;

  /** k per block: the fewest blocks of at most KC, made equal (even, for pairs), so that no
   * block is a short remainder that pays a full pass over C for little work. */
  static int equalBlocks(int64_t k) {
    const int64_t blocks = ceilDiv(k, F::KC);
    return static_cast<int>(std::min<int64_t>(F::KC, (ceilDiv(k, blocks) + 1) / 2 * 2));
  }

  /** Offset of k block `pc` (a multiple of kc_) in packed A, of `paddedRows` rows. */
  size_t blockOffset(int64_t pc, int64_t paddedRows) const {
    return static_cast<size_t>(pc / kc_) * F::packedSteps(kc_) * paddedRows;
  }

  void pass(int64_t i0, int64_t rows) {
    const int64_t rowPanels = ceilDiv(rows, F::MR), paddedRows = rowPanels * F::MR;
    packedA_ = packedAScratch().get<Packed>(blockOffset(ceilDiv(g_.k, kc_) * kc_, paddedRows) *
                                            sizeof(Packed));
    paddedRows_ = paddedRows;
    parallelFor(rowPanels, [&](int64_t begin, int64_t end) {
      for (int64_t panel = begin; panel < end; panel++) {
        const int64_t r = panel * F::MR;
        const int lanes = static_cast<int>(std::min<int64_t>(F::MR, rows - r));
        for (int64_t pc = 0; pc < g_.k; pc += kc_) {
          const int kc = static_cast<int>(std::min<int64_t>(kc_, g_.k - pc));
          Packed* dst = packedA_ + blockOffset(pc, paddedRows) + r * F::packedSteps(kc);
          F::pack(g_.a, i0 + r, lanes, F::MR, pc, kc, dst);
        }
      }
    });
    // Tasks: column blocks, about four per thread and sizes within one panel of each other, for
    // even finishing times; row blocks too when C is too narrow for that.
    const int threads = threadCount();
    const int64_t colPanels = ceilDiv(g_.n, F::NR);
    const int64_t colTasks = std::max(ceilDiv(colPanels, kMaxTaskColumns / F::NR),
                                      std::min<int64_t>(colPanels, 4 * threads));
    const int64_t rowTasks =
        colTasks >= 2 * threads ? 1 : std::min(rowPanels, ceilDiv(4 * threads, colTasks));
    parallelFor(rowTasks * colTasks, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; t++) {
        const int64_t rt = t / colTasks, ct = t % colTasks;
        const int64_t r0 = share(rowPanels, rowTasks, rt) * F::MR;
        const int64_t r1 = std::min(rows, share(rowPanels, rowTasks, rt + 1) * F::MR);
        const int64_t j0 = share(colPanels, colTasks, ct) * F::NR;
        const int64_t j1 = std::min(g_.n, share(colPanels, colTasks, ct + 1) * F::NR);
        task(i0, r0, r1, j0, j1);
      }
    });
  }

  /** Where part `part` of `parts` even parts of `total` begins. */
  static int64_t share(int64_t total, int64_t parts, int64_t part) { return total * part / parts; }

  /**
   * Asks for the C tile's lines before the micro-kernel runs: C is too big to stay in cache
   * between k blocks, and the tile's rows are far apart, so without it storeTile waits on
   * memory once per row.
   */
  void prefetchTile(const float* c, int rows) const {
    for (int r = 0; r < rows; r++)
      for (int j = 0; j < F::NR; j += 16) __builtin_prefetch(c + r * g_.ldc + j, 1);
  }

  /** Pass rows [r0, r1) (from i0) x columns [j0, j1) of C. */
  void task(int64_t i0, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
    thread_local Scratch packedBScratch;
    const int64_t panels = ceilDiv(j1 - j0, F::NR);
    const size_t packedBBytes = panels * F::NR * F::packedSteps(kc_) * sizeof(Packed);
    Packed* packedB = packedBScratch.get<Packed>(packedBBytes);
    alignas(64) float tile[F::MR * F::NR];
    for (int64_t pc = 0; pc < g_.k; pc += kc_) {
      const int kc = static_cast<int>(std::min<int64_t>(kc_, g_.k - pc));
      const int steps = F::packedSteps(kc);
      for (int64_t p = 0; p < panels; p++) {
        const int64_t j = j0 + p * F::NR;
        const int lanes = static_cast<int>(std::min<int64_t>(F::NR, j1 - j));
        F::pack(g_.b, j, lanes, F::NR, pc, kc, packedB + p * F::NR * steps);
      }
      const Packed* blockA = packedA_ + blockOffset(pc, paddedRows_);
      for (int64_t r = r0; r < r1; r += F::MR) {
        const int rows = static_cast<int>(std::min<int64_t>(F::MR, r1 - r));
        const Packed* ap = blockA + r * steps;
        for (int64_t p = 0; p < panels; p++) {
          const int64_t j = j0 + p * F::NR;
          const int cols = static_cast<int>(std::min<int64_t>(F::NR, j1 - j));
          float* c = g_.c + (i0 + r) * g_.ldc + j;
          prefetchTile(c, rows);
          F::multiply(steps, ap, packedB + p * F::NR * steps, tile);
          const Epilogue e{g_.alpha, g_.beta, g_.bias ? g_.bias + j : nullptr, pc > 0};
          storeTile(tile, F::NR, c, g_.ldc, rows, cols, e);
        }
      }
    }
  }

  const GemmCall& g_;
  const int kc_;
  Packed* packedA_ = nullptr;
  int64_t paddedRows_ = 0;
};

}  // namespace

void multiplyBlocked(const GemmCall& g) {
#if defined(__AVX512BF16__)
  if (g.bf16Pairs) {
    Blocked<PairFlavor>(g).run();
    return;
  }
#endif
  Blocked<F32Flavor>(g).run();
}

}  // namespace lf::gemm
