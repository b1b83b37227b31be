// GEMM: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C (+ bias[n]), row-major, C f32.
//
// BLIS-style: for each NC-wide column block and KC-deep slice, op(B) is packed into NR-wide
// micro-panels; for each MC-tall row block op(A) is packed (times alpha) into MR-tall micro-panels;
// a register-blocked MR x NR SIMD micro-kernel then multiplies panel pairs. Transposes and the
// bf16/f16 -> f32 widening happen only while packing, so the micro-kernel sees one layout.
// Pointers are byte offsets into the shared memory; packing scratch is passed in per thread.

const MR: i32 = 6;
const NR: i32 = 8;
const KC: i32 = 256;
const MC: i32 = 96; // multiple of MR
const NC: i32 = 2048; // multiple of NR

const DTYPE_F32: i32 = 0;
const DTYPE_BF16: i32 = 1;

/** Bytes of packing scratch one thread needs (packed A block, packed B block, one edge tile). */
export function gemmScratchBytes(): i32 {
  return (MC * KC + KC * NC + MR * NR) * 4;
}

@inline
function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

@inline
function f16ToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent == 0x1f) return reinterpret<f32>(sign | 0x7f800000 | (mantissa << 13));
  if (exponent == 0) {
    const subnormal = <f32>mantissa * 5.9604644775390625e-8; // mantissa * 2^-24
    return sign ? -subnormal : subnormal;
  }
  return reinterpret<f32>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/** Element `index` of an f32 / bf16 / f16 array, widened to f32. */
@inline
function loadElement(base: usize, index: usize, dtype: i32): f32 {
  if (dtype == DTYPE_F32) return load<f32>(base + (index << 2));
  const half = <u32>load<u16>(base + (index << 1));
  if (dtype == DTYPE_BF16) return reinterpret<f32>(half << 16);
  return f16ToF32(half);
}

/** Packs alpha * op(A)[i0 .. i0+mc, p0 .. p0+kc] into MR-row micro-panels ([panel][k][MR]), zero-padded. */
function packA(
  a: usize, lda: usize, transA: bool, dtype: i32,
  i0: i32, mc: i32, p0: i32, kc: i32, alpha: f32, dst: usize,
): void {
  for (let ip = 0; ip < mc; ip += MR) {
    const rows = min(MR, mc - ip);
    for (let r = 0; r < MR; r++) {
      let out = dst + ((ip * kc + r) << 2);
      if (r >= rows) {
        for (let p = 0; p < kc; p++, out += MR * 4) store<f32>(out, 0);
        continue;
      }
      const i = <usize>(i0 + ip + r);
      // op(A)[i, p] lives at i*lda + p, or p*lda + i when A is transposed.
      let index = transA ? <usize>p0 * lda + i : i * lda + <usize>p0;
      const step: usize = transA ? lda : 1;
      for (let p = 0; p < kc; p++, out += MR * 4, index += step) {
        store<f32>(out, alpha * loadElement(a, index, dtype));
      }
    }
  }
}

/** Packs op(B)[p0 .. p0+kc, j0 .. j0+nc] into NR-column micro-panels ([panel][k][NR]), zero-padded. */
function packB(
  b: usize, ldb: usize, transB: bool, dtype: i32,
  p0: i32, kc: i32, j0: i32, nc: i32, dst: usize,
): void {
  for (let jp = 0; jp < nc; jp += NR) {
    const cols = min(NR, nc - jp);
    const panel = dst + <usize>(jp * kc) * 4;
    for (let j = 0; j < NR; j++) {
      let out = panel + (<usize>j << 2);
      if (j >= cols) {
        for (let p = 0; p < kc; p++, out += NR * 4) store<f32>(out, 0);
        continue;
      }
      const col = <usize>(j0 + jp + j);
      // op(B)[p, col] lives at p*ldb + col, or col*ldb + p when B is transposed.
      let index = transB ? col * ldb + <usize>p0 : <usize>p0 * ldb + col;
      const step: usize = transB ? 1 : ldb;
      for (let p = 0; p < kc; p++, out += NR * 4, index += step) {
        store<f32>(out, loadElement(b, index, dtype));
      }
    }
  }
}

/** Writes one output row segment: C = acc + beta * C + bias (C is not read when beta == 0). */
@inline
function storeRow(c: usize, lo: v128, hi: v128, beta: f32, biasLo: v128, biasHi: v128): void {
  if (beta != 0) {
    const betaV = f32x4.splat(beta);
    lo = fma(betaV, v128.load(c), lo);
    hi = fma(betaV, v128.load(c, 16), hi);
  }
  v128.store(c, f32x4.add(lo, biasLo));
  v128.store(c, f32x4.add(hi, biasHi), 16);
}

/** Full MR x NR tile: C = Ap(MR x kc) * Bp(kc x NR) + beta * C + bias. */
function microKernel(kc: i32, ap: usize, bp: usize, c: usize, ldcBytes: usize, beta: f32, bias: usize): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = fma(a, b0, c00);
    c01 = fma(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = fma(a, b0, c10);
    c11 = fma(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = fma(a, b0, c20);
    c21 = fma(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = fma(a, b0, c30);
    c31 = fma(a, b1, c31);
    a = v128.load32_splat(ap, 16);
    c40 = fma(a, b0, c40);
    c41 = fma(a, b1, c41);
    a = v128.load32_splat(ap, 20);
    c50 = fma(a, b0, c50);
    c51 = fma(a, b1, c51);
    ap += MR * 4;
    bp += NR * 4;
  }
  const biasLo = bias ? v128.load(bias) : f32x4.splat(0);
  const biasHi = bias ? v128.load(bias, 16) : f32x4.splat(0);
  storeRow(c, c00, c01, beta, biasLo, biasHi);
  storeRow(c + ldcBytes, c10, c11, beta, biasLo, biasHi);
  storeRow(c + 2 * ldcBytes, c20, c21, beta, biasLo, biasHi);
  storeRow(c + 3 * ldcBytes, c30, c31, beta, biasLo, biasHi);
  storeRow(c + 4 * ldcBytes, c40, c41, beta, biasLo, biasHi);
  storeRow(c + 5 * ldcBytes, c50, c51, beta, biasLo, biasHi);
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
  const packedB = packedA + <usize>(MC * KC) * 4;
  const tile = packedB + <usize>(KC * NC) * 4;
  const ldcBytes = ldc << 2;
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
        packA(a, lda, transA, aDtype, ic, mc, pc, kc, alpha, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const cols = min(NR, nc - jr);
          const bp = packedB + <usize>(jr * kc) * 4;
          const col = jc + jr;
          const biasAt: usize = sliceBias ? sliceBias + (<usize>col << 2) : 0;
          for (let ir = 0; ir < mc; ir += MR) {
            const rows = min(MR, mc - ir);
            const ap = packedA + <usize>(ir * kc) * 4;
            const cAt = c + ((<usize>(ic + ir) * ldc + <usize>col) << 2);
            if (rows == MR && cols == NR) microKernel(kc, ap, bp, cAt, ldcBytes, sliceBeta, biasAt);
            else edgeKernel(kc, ap, bp, cAt, ldcBytes, sliceBeta, biasAt, rows, cols, tile);
          }
        }
      }
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
  const splitColumns = n >= m || n >= parts * 16 * NR;
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
    gemmBlock(
      m0, m1, n0, n1, k,
      a, <usize>lda, transA != 0, aDtype,
      b, <usize>ldb, transB != 0, bDtype,
      c, <usize>ldc, alpha, beta, bias, scratch + <usize>part * scratchStride,
    );
  }
}
