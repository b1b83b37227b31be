// GEMM: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C (+ bias[n]), row-major, C f32.
//
// BLIS-style: for each NC-wide column block and KC-deep slice, op(B) is packed into NR-wide
// micro-panels; for each MC-tall row block op(A) is packed (times alpha) into MR-tall micro-panels;
// a register-blocked MR x NR SIMD micro-kernel then multiplies panel pairs. Transposes and the
// bf16/f16 -> f32 widening happen only while packing, so the micro-kernel sees one layout.
// Pointers are byte offsets into the shared memory; packing scratch is passed in per thread.

// Rows of the register tile, set per build (`--use GEMM_TILE_ROWS=…`, scripts/build-wasm.mjs): 2 in
// the SIMD128 builds; 6 in the wide build, whose tile V8 turns into 256-bit AVX2 code when its wasm
// revectorizer is on (12 ymm accumulators; as 128-bit code the same tile would spill).
const MR: i32 = GEMM_TILE_ROWS;
const NR: i32 = 16;
const KC: i32 = 256;
const MC: i32 = (128 / MR) * MR; // multiple of MR
const NC: i32 = 2048; // multiple of NR

/**
 * Packed A is kept for the whole call (packed once, reused by every column block) when it fits in
 * this many floats; otherwise each MC x KC block is repacked per column block.
 */
const PACKED_A_FLOATS: i32 = 1 << 20;

const DTYPE_F32: i32 = 0;
const DTYPE_BF16: i32 = 1;

/** Bytes of packing scratch one thread needs (packed A, packed B block, one edge tile). */
export function gemmScratchBytes(): i32 {
  return (PACKED_A_FLOATS + KC * NC + MR * NR) * 4;
}

@inline
function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Four f16 (zero-extended into i32 lanes) to f32, subnormals, infinities and NaN included. */
@inline
function f16x4ToF32(half: v128): v128 {
  const magnitude = v128.and(half, i32x4.splat(0x7fff));
  const sign = i32x4.shl(v128.and(half, i32x4.splat(0x8000)), 16);
  const shifted = i32x4.shl(magnitude, 13);
  // As f32 bits the shifted value is the number scaled by 2^-112 (exact, also for subnormals).
  const finite = f32x4.mul(shifted, f32x4.splat(reinterpret<f32>(0x77800000))); // * 2^112
  const special = v128.or(shifted, i32x4.splat(0x7f800000));
  const isSpecial = i32x4.ge_u(magnitude, i32x4.splat(0x7c00));
  return v128.or(v128.bitselect(special, finite, isSpecial), sign);
}

/** Four consecutive elements at byte address `at`, widened to f32x4. */
@inline
function load4(at: usize, dtype: i32): v128 {
  if (dtype == DTYPE_F32) return v128.load(at);
  const half = v128.load16x4_u(at);
  if (dtype == DTYPE_BF16) return i32x4.shl(half, 16);
  return f16x4ToF32(half);
}

/** One element at byte address `at`, widened to f32. */
@inline
function load1(at: usize, dtype: i32): f32 {
  if (dtype == DTYPE_F32) return load<f32>(at);
  const half = <i32>load<u16>(at);
  if (dtype == DTYPE_BF16) return reinterpret<f32>(half << 16);
  return f32x4.extract_lane(f16x4ToF32(i32x4.splat(half)), 0);
}

/**
 * Packs 4 lanes x kc of a matrix into dst (lane l of step p at dst + p*dstStride + 4*l).
 * Element (p, lane) is at index p*pStep + lane*laneStep from `src`; lanes >= `lanes` are zero-filled.
 * Lanes adjacent in memory are copied directly; lanes strided in memory are transposed 4x4 at a time.
 */
function packLanes(
  src: usize, dtype: i32, pStep: usize, laneStep: usize, lanes: i32,
  kc: i32, dst: usize, dstStride: usize,
): void {
  const shift: usize = dtype == DTYPE_F32 ? 2 : 1;
  let p = 0;
  if (lanes == 4 && laneStep == 1) {
    for (; p < kc; p++) {
      v128.store(dst + <usize>p * dstStride, load4(src + ((<usize>p * pStep) << shift), dtype));
    }
  } else if (lanes == 4 && pStep == 1) {
    const rowBytes = laneStep << shift;
    for (; p + 4 <= kc; p += 4) {
      const at = src + (<usize>p << shift);
      const r0 = load4(at, dtype);
      const r1 = load4(at + rowBytes, dtype);
      const r2 = load4(at + 2 * rowBytes, dtype);
      const r3 = load4(at + 3 * rowBytes, dtype);
      const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
      const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
      const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
      const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
      const out = dst + <usize>p * dstStride;
      v128.store(out, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
      v128.store(out + dstStride, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
      v128.store(out + 2 * dstStride, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
      v128.store(out + 3 * dstStride, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
    }
  }
  // Remaining steps, and panels at the matrix edge, element by element.
  for (; p < kc; p++) {
    const out = dst + <usize>p * dstStride;
    for (let lane = 0; lane < 4; lane++) {
      let value: f32 = 0;
      if (lane < lanes) value = load1(src + ((<usize>p * pStep + <usize>lane * laneStep) << shift), dtype);
      store<f32>(out + (<usize>lane << 2), value);
    }
  }
}

/**
 * Packs alpha * op(A)[i0 .. i0+mc, p0 .. p0+kc] into MR-row micro-panels ([panel][k][MR]).
 * op(A)[i, p] is at i*lda + p, or p*lda + i when A is transposed.
 */
function packA(
  a: usize, lda: usize, transA: bool, dtype: i32,
  i0: i32, mc: i32, p0: i32, kc: i32, alpha: f32, dst: usize,
): void {
  const shift: usize = dtype == DTYPE_F32 ? 2 : 1;
  const pStep: usize = transA ? lda : 1;
  const rowStep: usize = transA ? 1 : lda;
  const alphaV = f32x4.splat(alpha);
  for (let ip = 0; ip < mc; ip += MR) {
    const rows = min(MR, mc - ip);
    const src = a + ((<usize>(i0 + ip) * rowStep + <usize>p0 * pStep) << shift);
    const panel = dst + <usize>(ip * kc) * 4;
    let p = 0;
    if (MR == 2 && rows == MR && !transA) {
      // Both rows are contiguous in k: interleave four k steps of the two rows at a time.
      const rowBytes = rowStep << shift;
      for (; p + 4 <= kc; p += 4) {
        const r0 = load4(src + (<usize>p << shift), dtype);
        const r1 = load4(src + rowBytes + (<usize>p << shift), dtype);
        const out = panel + <usize>p * (MR * 4);
        v128.store(out, f32x4.mul(v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), alphaV));
        v128.store(out, f32x4.mul(v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), alphaV), 16);
      }
    }
    for (; p < kc; p++) {
      const out = panel + <usize>p * (MR * 4);
      for (let r = 0; r < MR; r++) {
        let value: f32 = 0;
        if (r < rows) value = alpha * load1(src + ((<usize>p * pStep + <usize>r * rowStep) << shift), dtype);
        store<f32>(out + (<usize>r << 2), value);
      }
    }
  }
}

/**
 * Packs op(B)[p0 .. p0+kc, j0 .. j0+nc] into NR-column micro-panels ([panel][k][NR]), 4 columns
 * at a time. op(B)[p, j] is at p*ldb + j, or j*ldb + p when B is transposed.
 */
function packB(
  b: usize, ldb: usize, transB: bool, dtype: i32,
  p0: i32, kc: i32, j0: i32, nc: i32, dst: usize,
): void {
  const shift: usize = dtype == DTYPE_F32 ? 2 : 1;
  const pStep: usize = transB ? 1 : ldb;
  const colStep: usize = transB ? ldb : 1;
  for (let jp = 0; jp < nc; jp += NR) {
    const panel = dst + <usize>(jp * kc) * 4;
    for (let group = 0; group < NR; group += 4) {
      const col = <usize>(j0 + jp + group);
      const src = b + ((col * colStep + <usize>p0 * pStep) << shift);
      const lanes = max(0, min(4, nc - jp - group));
      packLanes(src, dtype, pStep, colStep, lanes, kc, panel + (<usize>group << 2), NR * 4);
    }
  }
}

/** Writes 4 vectors of one output row: C = acc + beta * C + bias (C is not read when beta == 0). */
@inline
function storeRow(c: usize, x0: v128, x1: v128, x2: v128, x3: v128, beta: f32, bias: usize): void {
  if (beta != 0) {
    const betaV = f32x4.splat(beta);
    x0 = fma(betaV, v128.load(c), x0);
    x1 = fma(betaV, v128.load(c, 16), x1);
    x2 = fma(betaV, v128.load(c, 32), x2);
    x3 = fma(betaV, v128.load(c, 48), x3);
  }
  if (bias) {
    x0 = f32x4.add(x0, v128.load(bias));
    x1 = f32x4.add(x1, v128.load(bias, 16));
    x2 = f32x4.add(x2, v128.load(bias, 32));
    x3 = f32x4.add(x3, v128.load(bias, 48));
  }
  v128.store(c, x0);
  v128.store(c, x1, 16);
  v128.store(c, x2, 32);
  v128.store(c, x3, 48);
}

/** Full MR x NR tile: C = Ap(MR x kc) * Bp(kc x NR) + beta * C + bias. */
@inline
function microKernel(kc: i32, ap: usize, bp: usize, c: usize, ldcBytes: usize, beta: f32, bias: usize): void {
  if (MR == 6) microKernel6x16(kc, ap, bp, c, ldcBytes, beta, bias);
  else microKernel2x16(kc, ap, bp, c, ldcBytes, beta, bias);
}

/**
 * Why 2 x 16: V8 (Node 20) schedules every load of the loop body before the multiply-adds, so
 * accumulators + loads per step must fit its 15 allocatable xmm registers; 8 accumulators + 2
 * broadcasts + 4 B vectors = 14. Bigger tiles (6x8, 5x8, 3x16) spill accumulators to the stack and
 * run at half speed; 4x8 fits too but measured a little slower.
 */
function microKernel2x16(kc: i32, ap: usize, bp: usize, c: usize, ldcBytes: usize, beta: f32, bias: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  // Loop on the B pointer alone: one induction variable fewer in the hottest loop.
  const bEnd = bp + <usize>kc * (NR * 4);
  while (bp < bEnd) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    const b2 = v128.load(bp, 32);
    const b3 = v128.load(bp, 48);
    let a = v128.load32_splat(ap);
    c00 = fma(a, b0, c00);
    c01 = fma(a, b1, c01);
    c02 = fma(a, b2, c02);
    c03 = fma(a, b3, c03);
    a = v128.load32_splat(ap, 4);
    c10 = fma(a, b0, c10);
    c11 = fma(a, b1, c11);
    c12 = fma(a, b2, c12);
    c13 = fma(a, b3, c13);
    ap += MR * 4;
    bp += NR * 4;
  }
  storeRow(c, c00, c01, c02, c03, beta, bias);
  storeRow(c + ldcBytes, c10, c11, c12, c13, beta, bias);
}

/**
 * The wide build's tile: the 2 x 16 loop with six rows. Revectorized, each pair of adjacent
 * 128-bit B loads, broadcasts and multiply-adds becomes one 256-bit operation: 12 accumulators +
 * 2 B vectors + 1 broadcast fit AVX2's 16 ymm registers, and each B load now feeds 6 rows.
 */
function microKernel6x16(kc: i32, ap: usize, bp: usize, c: usize, ldcBytes: usize, beta: f32, bias: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c02 = f32x4.splat(0), c03 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0), c12 = f32x4.splat(0), c13 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c22 = f32x4.splat(0), c23 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0), c32 = f32x4.splat(0), c33 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c42 = f32x4.splat(0), c43 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0), c52 = f32x4.splat(0), c53 = f32x4.splat(0);
  const bEnd = bp + <usize>kc * (NR * 4);
  while (bp < bEnd) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    const b2 = v128.load(bp, 32);
    const b3 = v128.load(bp, 48);
    let a = v128.load32_splat(ap);
    c00 = fma(a, b0, c00);
    c01 = fma(a, b1, c01);
    c02 = fma(a, b2, c02);
    c03 = fma(a, b3, c03);
    a = v128.load32_splat(ap, 4);
    c10 = fma(a, b0, c10);
    c11 = fma(a, b1, c11);
    c12 = fma(a, b2, c12);
    c13 = fma(a, b3, c13);
    a = v128.load32_splat(ap, 8);
    c20 = fma(a, b0, c20);
    c21 = fma(a, b1, c21);
    c22 = fma(a, b2, c22);
    c23 = fma(a, b3, c23);
    a = v128.load32_splat(ap, 12);
    c30 = fma(a, b0, c30);
    c31 = fma(a, b1, c31);
    c32 = fma(a, b2, c32);
    c33 = fma(a, b3, c33);
    a = v128.load32_splat(ap, 16);
    c40 = fma(a, b0, c40);
    c41 = fma(a, b1, c41);
    c42 = fma(a, b2, c42);
    c43 = fma(a, b3, c43);
    a = v128.load32_splat(ap, 20);
    c50 = fma(a, b0, c50);
    c51 = fma(a, b1, c51);
    c52 = fma(a, b2, c52);
    c53 = fma(a, b3, c53);
    ap += MR * 4;
    bp += NR * 4;
  }
  storeRow(c, c00, c01, c02, c03, beta, bias);
  storeRow(c + ldcBytes, c10, c11, c12, c13, beta, bias);
  storeRow(c + 2 * ldcBytes, c20, c21, c22, c23, beta, bias);
  storeRow(c + 3 * ldcBytes, c30, c31, c32, c33, beta, bias);
  storeRow(c + 4 * ldcBytes, c40, c41, c42, c43, beta, bias);
  storeRow(c + 5 * ldcBytes, c50, c51, c52, c53, beta, bias);
}

/** Partial tile at the matrix edge: computed into `tile`, then the valid rows x cols merged into C. */
function edgeKernel(
  kc: i32, ap: usize, bp: usize, c: usize, ldcBytes: usize, beta: f32, bias: usize,
  rows: i32, cols: i32, tile: usize,
): void {
  microKernel(kc, ap, bp, tile, NR * 4, 0, 0);
  for (let r = 0; r < rows; r++) {
    const row = c + <usize>r * ldcBytes;
    for (let j = 0; j < cols; j++) {
      const at = row + (<usize>j << 2);
      let value = load<f32>(tile + (<usize>(r * NR + j) << 2));
      if (beta != 0) value += beta * load<f32>(at);
      if (bias) value += load<f32>(bias + (<usize>j << 2));
      store<f32>(at, value);
    }
  }
}

/** C = beta * C + bias over a block, for the cases with no product term (k == 0 or alpha == 0). */
function scaleBlock(c: usize, ldc: usize, m0: i32, m1: i32, n0: i32, n1: i32, beta: f32, bias: usize): void {
  for (let i = m0; i < m1; i++) {
    for (let j = n0; j < n1; j++) {
      const at = c + ((<usize>i * ldc + <usize>j) << 2);
      let value: f32 = beta != 0 ? beta * load<f32>(at) : 0;
      if (bias) value += load<f32>(bias + (<usize>j << 2));
      store<f32>(at, value);
    }
  }
}

/** The blocked product for output rows [m0, m1) x columns [n0, n1) on one thread. */
function gemmBlock(
  m0: i32, m1: i32, n0: i32, n1: i32, k: i32,
  a: usize, lda: usize, transA: bool, aDtype: i32,
  b: usize, ldb: usize, transB: bool, bDtype: i32,
  c: usize, ldc: usize, alpha: f32, beta: f32, bias: usize, scratch: usize,
): void {
  if (k == 0 || alpha == 0) {
    scaleBlock(c, ldc, m0, m1, n0, n1, beta, bias);
    return;
  }
  const packedA = scratch;
  const packedB = packedA + <usize>PACKED_A_FLOATS * 4;
  const tile = packedB + <usize>(KC * NC) * 4;
  const ldcBytes = ldc << 2;
  const paddedRows = (m1 - m0 + MR - 1) / MR * MR;
  const keepPackedA = <i64>paddedRows * k <= PACKED_A_FLOATS;
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      packB(b, ldb, transB, bDtype, pc, kc, jc, nc, packedB);
      // Later K slices accumulate onto the partial result already in C.
      const sliceBeta: f32 = pc == 0 ? beta : 1;
      const sliceBias: usize = pc == 0 ? bias : 0;
      for (let ic = m0; ic < m1; ic += MC) {
        const mc = min(MC, m1 - ic);
        // A kept whole is laid out as [K slice][row block]: slice pc starts after pc * paddedRows floats.
        const blockA = keepPackedA ? packedA + (<usize>pc * paddedRows + <usize>((ic - m0) * kc)) * 4 : packedA;
        if (!keepPackedA || jc == n0) packA(a, lda, transA, aDtype, ic, mc, pc, kc, alpha, blockA);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = min(NR, nc - jr);
          const bp = packedB + <usize>(jr * kc) * 4;
          const col = jc + jr;
          const biasAt: usize = sliceBias ? sliceBias + (<usize>col << 2) : 0;
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = min(MR, mc - ir);
            const ap = blockA + <usize>(ir * kc) * 4;
            const cAt = c + ((<usize>(ic + ir) * ldc + <usize>col) << 2);
            if (rows == MR && cols == NR) microKernel(kc, ap, bp, cAt, ldcBytes, sliceBeta, biasAt);
            else edgeKernel(kc, ap, bp, cAt, ldcBytes, sliceBeta, biasAt, rows, cols, tile);
          }
        }
      }
    }
  }
}

/**
 * Rows of op(A) that take the dot-product path: with B transposed (weights [out, in]) and few
 * rows, as in decoding, packing B would move several times more memory than the product reads.
 * bf16 weights are dotted without widening instructions (see dotBf16), fast enough to beat
 * packing up to about 8 rows here; f32 and f16 weights only up to 2.
 */
const DOT_PATH_MAX_ROWS: i32 = 2;
const DOT_PATH_MAX_ROWS_BF16: i32 = 6;

/** Sum of the four lanes. */
@inline
function horizontalSum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Elements of a packed A row kept in the [even | odd] order of whole groups of 8 (bf16 B). */
@inline
function splitGroupsEnd(k: i32, bDtype: i32): i32 {
  return bDtype == DTYPE_BF16 ? k & ~15 : 0;
}

/** Where element p of an A row goes when packed: inside [0, splitEnd) groups of 8 are [even | odd]. */
@inline
function packedPosition(p: i32, splitEnd: i32): i32 {
  if (p >= splitEnd) return p;
  const r = p & 7;
  return (p & ~7) + ((r & 1) != 0 ? 4 + (r >> 1) : r >> 1);
}

/** C[i, j] = sum + beta * C[i, j] + bias[j]. */
@inline
function storeDot(c: usize, ldc: usize, i: i32, j: i32, sum: f32, beta: f32, bias: usize): void {
  const at = c + ((<usize>i * ldc + <usize>j) << 2);
  let value = sum;
  if (beta != 0) value += beta * load<f32>(at);
  if (bias) value += load<f32>(bias + (<usize>j << 2));
  store<f32>(at, value);
}

/**
 * Dot product of a packed A row with a B row of k bf16 values. A 16-byte load holds 8 bf16; as
 * i32 lanes, the odd elements are already f32 in the upper halves (clear the lower halves) and
 * the even ones become f32 when shifted up by 16, so no widening instructions are needed,
 * provided A was packed with each group of 8 as [even | odd]. The lower halves are cleared with
 * two shifts rather than a mask: V8 rematerializes a v128 constant inside the loop.
 */
function dotBf16(bRow: usize, aRow: usize, k: i32): f32 {
  const k16 = k & ~15;
  // Four independent chains hide the FMA latency.
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let p = 0; p < k16; p += 16) {
    const x0 = v128.load(bRow + (<usize>p << 1));
    const x1 = v128.load(bRow + (<usize>p << 1), 16);
    const at = aRow + (<usize>p << 2);
    s0 = fma(v128.load(at), i32x4.shl(x0, 16), s0);
    s1 = fma(v128.load(at, 16), i32x4.shl(i32x4.shr_u(x0, 16), 16), s1);
    s2 = fma(v128.load(at, 32), i32x4.shl(x1, 16), s2);
    s3 = fma(v128.load(at, 48), i32x4.shl(i32x4.shr_u(x1, 16), 16), s3);
  }
  let sum = horizontalSum(f32x4.add(f32x4.add(s0, s1), f32x4.add(s2, s3)));
  for (let p = k16; p < k; p++) {
    sum += load<f32>(aRow + (<usize>p << 2)) * reinterpret<f32>(<i32>load<u16>(bRow + (<usize>p << 1)) << 16);
  }
  return sum;
}

/** As dotBf16, for a B row stored as f32 or f16 (widened 4 at a time), A packed in plain order. */
function dotWidened(bRow: usize, bDtype: i32, aRow: usize, k: i32): f32 {
  const bShift: usize = bDtype == DTYPE_F32 ? 2 : 1;
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let p = 0;
  for (; p + 8 <= k; p += 8) {
    const at = aRow + (<usize>p << 2);
    s0 = fma(v128.load(at), load4(bRow + (<usize>p << bShift), bDtype), s0);
    s1 = fma(v128.load(at, 16), load4(bRow + (<usize>(p + 4) << bShift), bDtype), s1);
  }
  let sum = horizontalSum(f32x4.add(s0, s1));
  for (; p < k; p++) sum += load<f32>(aRow + (<usize>p << 2)) * load1(bRow + (<usize>p << bShift), bDtype);
  return sum;
}

/**
 * C[0..m, n0..n1] for a few rows m and B transposed: each output is a dot product of a row of op(A)
 * (packed to f32 times alpha in `scratch`) with a row of B, which is contiguous and read once.
 * This is decoding's product (a few tokens against weights [out, in]): it streams the
 * weights, so it is bound by memory bandwidth and by the instructions spent per weight.
 */
function dotProductBlock(
  m: i32, n0: i32, n1: i32, k: i32,
  a: usize, lda: usize, transA: bool, aDtype: i32,
  b: usize, ldb: usize, bDtype: i32,
  c: usize, ldc: usize, alpha: f32, beta: f32, bias: usize, scratch: usize,
): void {
  const aShift: usize = aDtype == DTYPE_F32 ? 2 : 1;
  const splitEnd = splitGroupsEnd(k, bDtype);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const index = transA ? <usize>p * lda + <usize>i : <usize>i * lda + <usize>p;
      const to = scratch + (<usize>(i * k + packedPosition(p, splitEnd)) << 2);
      store<f32>(to, alpha * load1(a + (index << aShift), aDtype));
    }
  }
  // With two rows the B row is read twice, the second time from L1.
  const bShift: usize = bDtype == DTYPE_F32 ? 2 : 1;
  for (let j = n0; j < n1; j++) {
    const bRow = b + ((<usize>j * ldb) << bShift);
    for (let i = 0; i < m; i++) {
      const aRow = scratch + (<usize>(i * k) << 2);
      const sum = bDtype == DTYPE_BF16 ? dotBf16(bRow, aRow, k) : dotWidened(bRow, bDtype, aRow, k);
      storeDot(c, ldc, i, j, sum, beta, bias);
    }
  }
}

/** [begin, end) of part `part` of `parts` over `total` items, in whole units of `unit` items. */
@inline
function partBegin(total: i32, unit: i32, parts: i32, part: i32): i32 {
  const units = (total + unit - 1) / unit;
  return min(total, <i32>((<i64>units * part) / parts) * unit);
}

/**
 * Computes parts [start, end) of `parts` (one per thread; part p uses scratch + p * scratchStride).
 * Splitting over columns keeps each thread packing only its own slice of B, so it is preferred
 * unless the output is too narrow to give every thread a useful share.
 */
export function gemmPart(
  m: i32, n: i32, k: i32,
  a: usize, lda: i32, transA: i32, aDtype: i32,
  b: usize, ldb: i32, transB: i32, bDtype: i32,
  c: usize, ldc: i32, alpha: f32, beta: f32, bias: usize,
  scratch: usize, scratchStride: usize, parts: i32, start: i32, end: i32,
): void {
  const useDotProducts =
    transB != 0 && m <= (bDtype == DTYPE_BF16 ? DOT_PATH_MAX_ROWS_BF16 : DOT_PATH_MAX_ROWS) && k > 0 && alpha != 0 && <i64>m * k <= PACKED_A_FLOATS;
  const splitColumns = useDotProducts || n >= m || n >= parts * 16 * NR;
  for (let part = start; part < end; part++) {
    let m0 = 0, m1 = m, n0 = 0, n1 = n;
    if (splitColumns) {
      n0 = partBegin(n, NR, parts, part);
      n1 = partBegin(n, NR, parts, part + 1);
    } else {
      m0 = partBegin(m, MR, parts, part);
      m1 = partBegin(m, MR, parts, part + 1);
    }
    if (m0 >= m1 || n0 >= n1) continue;
    const partScratch = scratch + <usize>part * scratchStride;
    if (useDotProducts) {
      dotProductBlock(
        m, n0, n1, k, a, <usize>lda, transA != 0, aDtype, b, <usize>ldb, bDtype,
        c, <usize>ldc, alpha, beta, bias, partScratch,
      );
      continue;
    }
    gemmBlock(
      m0, m1, n0, n1, k,
      a, <usize>lda, transA != 0, aDtype,
      b, <usize>ldb, transB != 0, bDtype,
      c, <usize>ldc, alpha, beta, bias, partScratch,
    );
  }
}

/**
 * The machine's multiply-add ceiling for this module's SIMD code, for benchmarks: `iterations`
 * rounds of 12 independent f32x4 multiply-adds on registers only (12 chains hide the FMA latency
 * and, with the 2 operands, stay inside V8's 15 allocatable xmm registers). Returns a sum of the
 * accumulators so that none of them is dead code. FMA_PEAK_FLOPS_PER_ITERATION flops per round.
 */
export function fmaPeak(iterations: i32, x: f32, y: f32): f32 {
  const xv = f32x4.splat(x);
  const yv = f32x4.splat(y);
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
  let a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
  for (let i = 0; i < iterations; i++) {
    a0 = fma(xv, yv, a0); a1 = fma(xv, yv, a1); a2 = fma(xv, yv, a2); a3 = fma(xv, yv, a3);
    a4 = fma(xv, yv, a4); a5 = fma(xv, yv, a5); a6 = fma(xv, yv, a6); a7 = fma(xv, yv, a7);
    a8 = fma(xv, yv, a8); a9 = fma(xv, yv, a9); a10 = fma(xv, yv, a10); a11 = fma(xv, yv, a11);
  }
  const sum = f32x4.add(
    f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(a4, a5)),
    f32x4.add(f32x4.add(f32x4.add(a6, a7), f32x4.add(a8, a9)), f32x4.add(a10, a11)),
  );
  return f32x4.extract_lane(sum, 0);
}

/** Flops of one fmaPeak round. */
export function fmaPeakFlopsPerIteration(): i32 {
  return 12 * 8;
}
