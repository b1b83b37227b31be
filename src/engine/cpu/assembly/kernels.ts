// Non-GEMM compute kernels of the CPU backend (AssemblyScript, SIMD128), see docs/ARCHITECTURE.md
// "Kernel signatures". src/engine/cpu/reference-kernels.ts holds a plain-JS twin of each.
//
// Rules that let every worker instantiate this module over the one shared memory:
// - nothing allocates and nothing lives in memory: no data segments, no mutable globals. That
//   is also why exp / log / sin / cos are written here: AssemblyScript's Math uses lookup tables
//   (data segments).
// - all buffers are byte-offset pointers (usize) to f32 data unless named otherwise; 0 = absent.
// - parallel kernels take a trailing work range [start, end) over their outermost index.
// Every .ts file of this folder is an entry file of one module, so everything exported here
// becomes a wasm export; helpers stay unexported and this file holds all of them.

// ---------------------------------------------------------------------------------------------
// Small helpers

@inline function at(base: usize, index: i32): usize {
  return base + (<usize>index << 2);
}

@inline function splat(x: f32): v128 {
  return f32x4.splat(x);
}

/** a * b + c; fused (and slightly more accurate) in the relaxed-SIMD build. */
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

@inline function lanes(a: f32, b: f32, c: f32, d: f32): v128 {
  return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(splat(a), 1, b), 2, c), 3, d);
}

@inline function hsum(a: v128): f32 {
  const pairs = f32x4.add(a, i32x4.shuffle(a, a, 2, 3, 0, 1));
  return f32x4.extract_lane(pairs, 0) + f32x4.extract_lane(pairs, 1);
}

@inline function hmax(a: v128): f32 {
  const pairs = f32x4.pmax(a, i32x4.shuffle(a, a, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(pairs, 0), f32x4.extract_lane(pairs, 1));
}

/** [sum(a), sum(b), sum(c), sum(d)]: four horizontal sums in one transpose-and-add. */
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(i32x4.shuffle(a, b, 0, 4, 2, 6), i32x4.shuffle(a, b, 1, 5, 3, 7));
  const cd = f32x4.add(i32x4.shuffle(c, d, 0, 4, 2, 6), i32x4.shuffle(c, d, 1, 5, 3, 7));
  return f32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

// ---------------------------------------------------------------------------------------------
// Math without tables

const LOG2E: f32 = 1.44269504;
// ln 2 split so that k * LN2_HI is exact for the |k| <= 128 of f32 exponents.
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
// 1.5 * 2^23: adding it rounds to the nearest integer, which then sits in the low mantissa bits.
const ROUND_MAGIC: f32 = 12582912;

/**
 * exp per lane, to about 1 ulp: exp(x) = 2^k * exp(r), |r| <= ln2/2, exp(r) by its degree-7
 * Taylor polynomial. Saturates at exp(88); below -87.3 (and for -inf) it is exactly 0; NaN stays
 * NaN. pmin / pmax and the magic-number rounding are single x86 instructions, where min / max /
 * nearest / trunc_sat need NaN fix-up sequences.
 */
function expv(x: v128): v128 {
  const clamped = f32x4.pmax(f32x4.pmin(x, splat(88)), splat(-88));
  const shifted = madd(clamped, splat(LOG2E), splat(ROUND_MAGIC));
  const k = f32x4.sub(shifted, splat(ROUND_MAGIC));
  const r = madd(k, splat(-LN2_LO), madd(k, splat(-LN2_HI), clamped));
  let poly = splat(1.0 / 5040);
  poly = madd(poly, r, splat(1.0 / 720));
  poly = madd(poly, r, splat(1.0 / 120));
  poly = madd(poly, r, splat(1.0 / 24));
  poly = madd(poly, r, splat(1.0 / 6));
  poly = madd(poly, r, splat(0.5));
  poly = madd(poly, r, splat(1));
  poly = madd(poly, r, splat(1));
  // The low mantissa bits of `shifted` hold k (two's complement): k + 127 moved into the exponent field is 2^k.
  const twoToK = i32x4.shl(i32x4.add(shifted, i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(poly, twoToK), f32x4.lt(x, splat(-87.3)));
}

@inline function expf(x: f32): f32 {
  return f32x4.extract_lane(expv(splat(x)), 0);
}

/** 1 / (1 + exp(-x)) per lane. */
@inline function sigmoidv(x: v128): v128 {
  return f32x4.div(splat(1), f32x4.add(splat(1), expv(f32x4.neg(x))));
}

const LN2_F64: f64 = 0.6931471805599453;
const SQRT2_F64: f64 = 1.4142135623730951;

/** Natural log of a positive normal f64: x = 2^e * m, m in [1/sqrt2, sqrt2), ln m = 2 atanh(s). */
function lnF64(x: f64): f64 {
  const bits = reinterpret<u64>(x);
  let e = <i32>((bits >> 52) & 0x7ff) - 1023;
  let m = reinterpret<f64>((bits & 0x000fffffffffffff) | 0x3ff0000000000000);
  if (m > SQRT2_F64) {
    m *= 0.5;
    e++;
  }
  const s = (m - 1) / (m + 1); // |s| < 0.172, so 12 terms of the odd series reach f64 precision
  const s2 = s * s;
  let series: f64 = 1.0 / 23;
  for (let n = 21; n >= 1; n -= 2) series = series * s2 + 1.0 / <f64>n;
  return 2 * s * series + <f64>e * LN2_F64;
}

// pi/2 in three 33-bit pieces: k * piece is exact for the |k| < 2^20 of any RoPE angle.
const PIO2_1: f64 = 1.57079632673412561417;
const PIO2_2: f64 = 6.07710050630396597660e-11;
const PIO2_3: f64 = 2.02226624871116645580e-21;
const TWO_OVER_PI: f64 = 0.6366197723675814;

/** Taylor series of sin(r) / r for |r| <= pi/4, through r^18 (error below 1e-19). */
function sinOverR(z: f64): f64 {
  let t: f64 = 1.0 / 121645100408832000; // 1 / 19!
  t = t * -z + 1.0 / 355687428096000; // 17!
  t = t * -z + 1.0 / 1307674368000; // 15!
  t = t * -z + 1.0 / 6227020800; // 13!
  t = t * -z + 1.0 / 39916800; // 11!
  t = t * -z + 1.0 / 362880; // 9!
  t = t * -z + 1.0 / 5040; // 7!
  t = t * -z + 1.0 / 120; // 5!
  t = t * -z + 1.0 / 6; // 3!
  return t * -z + 1;
}

/** Taylor series of cos(r) for |r| <= pi/4, through r^20 (error below 1e-20). */
function cosTaylor(z: f64): f64 {
  let t: f64 = 1.0 / 2432902008176640000; // 1 / 20!
  t = t * -z + 1.0 / 6402373705728000; // 18!
  t = t * -z + 1.0 / 20922789888000; // 16!
  t = t * -z + 1.0 / 87178291200; // 14!
  t = t * -z + 1.0 / 479001600; // 12!
  t = t * -z + 1.0 / 3628800; // 10!
  t = t * -z + 1.0 / 40320; // 8!
  t = t * -z + 1.0 / 720; // 6!
  t = t * -z + 1.0 / 24; // 4!
  t = t * -z + 1.0 / 2; // 2!
  return t * -z + 1;
}

/**
 * [sin(angle), cos(angle)] as f64x2, for |angle| < 1.6e6: angle = k * pi/2 + r, |r| <= pi/4, then
 * the quadrant k mod 4 picks and signs the pair (sin r, cos r).
 */
function sinCos(angle: f64): v128 {
  const k = nearest<f64>(angle * TWO_OVER_PI);
  const r = angle - k * PIO2_1 - k * PIO2_2 - k * PIO2_3;
  const z = r * r;
  const s = r * sinOverR(z);
  const c = cosTaylor(z);
  const quadrant = <i32>k & 3;
  const sin = quadrant == 0 ? s : quadrant == 1 ? c : quadrant == 2 ? -s : -c;
  const cos = quadrant == 0 ? c : quadrant == 1 ? -s : quadrant == 2 ? -c : s;
  return f64x2.replace_lane(f64x2.splat(sin), 1, cos);
}

// ---------------------------------------------------------------------------------------------
// Attention

/** Next key >= j visible to the query at `pos` (keys <= pos, unmasked, same segment), or pos+1. */
@inline function nextVisibleKey(j: i32, pos: i32, maskRow: usize, segRow: usize, querySeg: i32): i32 {
  while (j <= pos) {
    const unmasked = maskRow == 0 || load<i32>(at(maskRow, j)) != 0;
    if (unmasked && (segRow == 0 || load<i32>(at(segRow, j)) == querySeg)) return j;
    j++;
  }
  return pos + 1;
}

/** The first key a query at `pos` may see: 0, or pos − window + 1 in a sliding-window layer. */
@inline function firstKey(pos: i32, window: i32): i32 {
  return window > 0 ? max(0, pos - window + 1) : 0;
}

/** [x.a, x.b, x.c, x.d] for rows of length D. */
function dot4(x: usize, a: usize, b: usize, c: usize, d: usize, D: i32): v128 {
  let sa = splat(0);
  let sb = splat(0);
  let sc = splat(0);
  let sd = splat(0);
  let i = 0;
  for (; i + 4 <= D; i += 4) {
    const offset = <usize>i << 2;
    const xv = v128.load(x + offset);
    sa = madd(xv, v128.load(a + offset), sa);
    sb = madd(xv, v128.load(b + offset), sb);
    sc = madd(xv, v128.load(c + offset), sc);
    sd = madd(xv, v128.load(d + offset), sd);
  }
  let sums = hsum4(sa, sb, sc, sd);
  for (; i < D; i++) {
    const xs = load<f32>(at(x, i));
    const tail = lanes(xs * load<f32>(at(a, i)), xs * load<f32>(at(b, i)), xs * load<f32>(at(c, i)), xs * load<f32>(at(d, i)));
    sums = f32x4.add(sums, tail);
  }
  return sums;
}

function dot(x: usize, y: usize, n: i32): f32 {
  let acc = splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = madd(v128.load(at(x, i)), v128.load(at(y, i)), acc);
  let sum = hsum(acc);
  for (; i < n; i++) sum += load<f32>(at(x, i)) * load<f32>(at(y, i));
  return sum;
}

/** acc += w[0] * a + w[1] * b + w[2] * c + w[3] * d over rows of length D. */
function accumulate4(acc: usize, w: v128, a: usize, b: usize, c: usize, d: usize, D: i32): void {
  const wa = f32x4.splat(f32x4.extract_lane(w, 0));
  const wb = f32x4.splat(f32x4.extract_lane(w, 1));
  const wc = f32x4.splat(f32x4.extract_lane(w, 2));
  const wd = f32x4.splat(f32x4.extract_lane(w, 3));
  let i = 0;
  for (; i + 4 <= D; i += 4) {
    const offset = <usize>i << 2;
    let sum = madd(wa, v128.load(a + offset), v128.load(acc + offset));
    sum = madd(wb, v128.load(b + offset), sum);
    sum = madd(wc, v128.load(c + offset), sum);
    sum = madd(wd, v128.load(d + offset), sum);
    v128.store(acc + offset, sum);
  }
  for (; i < D; i++) {
    const sum =
      load<f32>(at(acc, i)) +
      f32x4.extract_lane(wa, 0) * load<f32>(at(a, i)) +
      f32x4.extract_lane(wb, 0) * load<f32>(at(b, i)) +
      f32x4.extract_lane(wc, 0) * load<f32>(at(c, i)) +
      f32x4.extract_lane(wd, 0) * load<f32>(at(d, i));
    store<f32>(at(acc, i), sum);
  }
}

/** y += alpha * x over n floats. */
function axpyRow(y: usize, alpha: f32, x: usize, n: i32): void {
  const av = splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(y, i), madd(av, v128.load(at(x, i)), v128.load(at(y, i))));
  for (; i < n; i++) store<f32>(at(y, i), load<f32>(at(y, i)) + alpha * load<f32>(at(x, i)));
}

function fillZero(y: usize, n: i32): void {
  memory.fill(y, 0, <usize>n << 2);
}

/** y *= alpha over n floats. */
function scaleInPlace(y: usize, alpha: f32, n: i32): void {
  const av = splat(alpha);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(at(y, i), f32x4.mul(av, v128.load(at(y, i))));
  for (; i < n; i++) store<f32>(at(y, i), alpha * load<f32>(at(y, i)));
}

/**
 * Causal grouped-query attention, flash style: one query at a time with an online softmax over
 * blocks of four visible keys, accumulating into its `out` row. A short last block repeats its
 * first key in the missing lanes with the score forced to -inf (probability 0), which keeps every
 * read inside valid rows. Work items: b * H + h.
 */
export function attentionForward(
  q: usize, k: usize, v: usize, out: usize, lse: usize,
  B: i32, Tq: i32, Tk: i32, kvCap: i32, H: i32, KVH: i32, D: i32,
  keyMask: usize, segIds: usize, scale: f32, window: i32, start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  for (let job = start; job < end; job++) {
    const b = job / H;
    const h = job % H;
    const kHead = at(k, (b * kvCap * KVH + h / group) * D);
    const vHead = at(v, (b * kvCap * KVH + h / group) * D);
    const maskRow = keyMask ? at(keyMask, b * kvCap) : 0;
    const segRow = segIds ? at(segIds, b * kvCap) : 0;
    for (let i = 0; i < Tq; i++) {
      const pos = Tk - Tq + i;
      const querySeg = segRow ? load<i32>(at(segRow, pos)) : 0;
      const qRow = at(q, ((b * Tq + i) * H + h) * D);
      const oRow = at(out, ((b * Tq + i) * H + h) * D);
      fillZero(oRow, D);
      let runMax: f32 = -Infinity;
      let runSum: f32 = 0;
      let j0 = nextVisibleKey(firstKey(pos, window), pos, maskRow, segRow, querySeg);
      while (j0 <= pos) {
        const j1 = nextVisibleKey(j0 + 1, pos, maskRow, segRow, querySeg);
        const j2 = nextVisibleKey(j1 + 1, pos, maskRow, segRow, querySeg);
        const j3 = nextVisibleKey(j2 + 1, pos, maskRow, segRow, querySeg);
        const k0 = kHead + <usize>j0 * keyStride;
        const k1 = j1 <= pos ? kHead + <usize>j1 * keyStride : k0;
        const k2 = j2 <= pos ? kHead + <usize>j2 * keyStride : k0;
        const k3 = j3 <= pos ? kHead + <usize>j3 * keyStride : k0;
        let scores = f32x4.mul(dot4(qRow, k0, k1, k2, k3, D), splat(scale));
        if (j1 > pos) scores = f32x4.replace_lane(scores, 1, -Infinity);
        if (j2 > pos) scores = f32x4.replace_lane(scores, 2, -Infinity);
        if (j3 > pos) scores = f32x4.replace_lane(scores, 3, -Infinity);
        const blockMax = hmax(scores);
        if (blockMax > runMax) {
          const correction = expf(runMax - blockMax);
          runSum *= correction;
          scaleInPlace(oRow, correction, D);
          runMax = blockMax;
        }
        const probs = expv(f32x4.sub(scores, splat(runMax)));
        runSum += hsum(probs);
        const v0 = vHead + (k0 - kHead);
        accumulate4(oRow, probs, v0, vHead + (k1 - kHead), vHead + (k2 - kHead), vHead + (k3 - kHead), D);
        j0 = nextVisibleKey(j3 + 1, pos, maskRow, segRow, querySeg);
      }
      const lseAt = at(lse, (b * H + h) * Tq + i);
      if (runSum == 0) {
        store<f32>(lseAt, Infinity); // no visible key: zero output, and exp(s - lse) = 0 backward
        continue;
      }
      scaleInPlace(oRow, 1 / runSum, D);
      store<f32>(lseAt, runMax + <f32>lnF64(<f64>runSum));
    }
  }
}

/**
 * Backward of one query row over its visible keys in [first, last]: recomputes P = exp(S - lse),
 * dS = P * (dP - delta) with dP = dout . v, then adds dS * k into dqRow and dS * q, P * dout into
 * the key rows of dkHead / dvHead. A 0 dqRow or dkHead skips that half. Blocks of four visible
 * keys, padded as in attentionForward (padded lanes have P = dS = 0 and update nothing).
 */
function backwardRow(
  qRow: usize, doRow: usize, dqRow: usize, rowLse: f32, rowDelta: f32,
  kHead: usize, vHead: usize, dkHead: usize, dvHead: usize, keyStride: usize,
  first: i32, last: i32, maskRow: usize, segRow: usize, querySeg: i32, D: i32, scale: f32,
): void {
  let j0 = nextVisibleKey(first, last, maskRow, segRow, querySeg);
  while (j0 <= last) {
    const j1 = nextVisibleKey(j0 + 1, last, maskRow, segRow, querySeg);
    const j2 = nextVisibleKey(j1 + 1, last, maskRow, segRow, querySeg);
    const j3 = nextVisibleKey(j2 + 1, last, maskRow, segRow, querySeg);
    const o0 = <usize>j0 * keyStride;
    const o1 = j1 <= last ? <usize>j1 * keyStride : o0;
    const o2 = j2 <= last ? <usize>j2 * keyStride : o0;
    const o3 = j3 <= last ? <usize>j3 * keyStride : o0;
    let scores = f32x4.mul(dot4(qRow, kHead + o0, kHead + o1, kHead + o2, kHead + o3, D), splat(scale));
    if (j1 > last) scores = f32x4.replace_lane(scores, 1, -Infinity);
    if (j2 > last) scores = f32x4.replace_lane(scores, 2, -Infinity);
    if (j3 > last) scores = f32x4.replace_lane(scores, 3, -Infinity);
    const probs = expv(f32x4.sub(scores, splat(rowLse)));
    const dProbs = dot4(doRow, vHead + o0, vHead + o1, vHead + o2, vHead + o3, D);
    const dScores = f32x4.mul(f32x4.mul(probs, f32x4.sub(dProbs, splat(rowDelta))), splat(scale));
    if (dqRow) accumulate4(dqRow, dScores, kHead + o0, kHead + o1, kHead + o2, kHead + o3, D);
    if (dkHead) {
      axpyRow(dkHead + o0, f32x4.extract_lane(dScores, 0), qRow, D);
      axpyRow(dvHead + o0, f32x4.extract_lane(probs, 0), doRow, D);
      if (j1 <= last) {
        axpyRow(dkHead + o1, f32x4.extract_lane(dScores, 1), qRow, D);
        axpyRow(dvHead + o1, f32x4.extract_lane(probs, 1), doRow, D);
      }
      if (j2 <= last) {
        axpyRow(dkHead + o2, f32x4.extract_lane(dScores, 2), qRow, D);
        axpyRow(dvHead + o2, f32x4.extract_lane(probs, 2), doRow, D);
      }
      if (j3 <= last) {
        axpyRow(dkHead + o3, f32x4.extract_lane(dScores, 3), qRow, D);
        axpyRow(dvHead + o3, f32x4.extract_lane(probs, 3), doRow, D);
      }
    }
    j0 = nextVisibleKey(j3 + 1, last, maskRow, segRow, querySeg);
  }
}

/** Zeroes rows [first, last] of one kv head's dk and dv. */
function zeroKeyRows(dkHead: usize, dvHead: usize, keyStride: usize, first: i32, last: i32, D: i32): void {
  for (let j = first; j <= last; j++) {
    fillZero(dkHead + <usize>j * keyStride, D);
    fillZero(dvHead + <usize>j * keyStride, D);
  }
}

/**
 * Flash backward (Tq = Tk = kvCap = T), dq, dk, dv overwritten. Work items: b * KVH + kvh; each
 * owns the dk / dv rows of its kv head and the dq rows of the query heads reading it, so jobs
 * never share an output. The cheapest form when there are at least a few such pairs per thread.
 */
export function attentionBackward(
  q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize,
  dq: usize, dk: usize, dv: usize,
  B: i32, T: i32, H: i32, KVH: i32, D: i32,
  keyMask: usize, segIds: usize, scale: f32, window: i32, start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  for (let job = start; job < end; job++) {
    const b = job / KVH;
    const kvh = job % KVH;
    const headOffset = <usize>((b * T * KVH + kvh) * D) << 2;
    zeroKeyRows(dk + headOffset, dv + headOffset, keyStride, 0, T - 1, D);
    const maskRow = keyMask ? at(keyMask, b * T) : 0;
    const segRow = segIds ? at(segIds, b * T) : 0;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      for (let i = 0; i < T; i++) {
        const rowOffset = <usize>(((b * T + i) * H + h) * D) << 2;
        fillZero(dq + rowOffset, D);
        backwardRow(
          q + rowOffset, dout + rowOffset, dq + rowOffset,
          load<f32>(at(lse, (b * H + h) * T + i)), dot(dout + rowOffset, out + rowOffset, D),
          k + headOffset, v + headOffset, dk + headOffset, dv + headOffset, keyStride,
          firstKey(i, window), i, maskRow, segRow, segRow ? load<i32>(at(segRow, i)) : 0, D, scale,
        );
      }
    }
  }
}

/**
 * dq half of the split backward (with attentionBackwardKeyValue), for when there are too few
 * (b, kv head) pairs to keep every thread busy. Work items: b * H + h.
 */
export function attentionBackwardQuery(
  q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize, dq: usize,
  B: i32, T: i32, H: i32, KVH: i32, D: i32,
  keyMask: usize, segIds: usize, scale: f32, window: i32, start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  for (let job = start; job < end; job++) {
    const b = job / H;
    const h = job % H;
    const headOffset = <usize>((b * T * KVH + h / group) * D) << 2;
    const maskRow = keyMask ? at(keyMask, b * T) : 0;
    const segRow = segIds ? at(segIds, b * T) : 0;
    for (let i = 0; i < T; i++) {
      const rowOffset = <usize>(((b * T + i) * H + h) * D) << 2;
      fillZero(dq + rowOffset, D);
      backwardRow(
        q + rowOffset, dout + rowOffset, dq + rowOffset,
        load<f32>(at(lse, (b * H + h) * T + i)), dot(dout + rowOffset, out + rowOffset, D),
        k + headOffset, v + headOffset, 0, 0, keyStride,
        firstKey(i, window), i, maskRow, segRow, segRow ? load<i32>(at(segRow, i)) : 0, D, scale,
      );
    }
  }
}

/**
 * dk / dv half of the split backward: each work item owns `keyBlock` key rows of one kv head and
 * walks the queries that can see them (recomputing each query's rowsum(dout * out) once per
 * block). Work items: (b * KVH + kvh) * ceil(T / keyBlock) + block.
 */
export function attentionBackwardKeyValue(
  q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize, dk: usize, dv: usize,
  B: i32, T: i32, H: i32, KVH: i32, D: i32,
  keyMask: usize, segIds: usize, scale: f32, window: i32, keyBlock: i32, start: i32, end: i32,
): void {
  const group = H / KVH;
  const keyStride = <usize>(KVH * D) << 2;
  const blocks = (T + keyBlock - 1) / keyBlock;
  for (let job = start; job < end; job++) {
    const b = job / (KVH * blocks);
    const kvh = (job / blocks) % KVH;
    const first = (job % blocks) * keyBlock;
    const last = min(T, first + keyBlock) - 1;
    const headOffset = <usize>((b * T * KVH + kvh) * D) << 2;
    zeroKeyRows(dk + headOffset, dv + headOffset, keyStride, first, last, D);
    const maskRow = keyMask ? at(keyMask, b * T) : 0;
    const segRow = segIds ? at(segIds, b * T) : 0;
    // With a window, queries past last + window − 1 see none of this block's keys.
    const lastQuery = window > 0 ? min(T, last + window) : T;
    for (let h = kvh * group; h < (kvh + 1) * group; h++) {
      for (let i = first; i < lastQuery; i++) {
        const rowOffset = <usize>(((b * T + i) * H + h) * D) << 2;
        backwardRow(
          q + rowOffset, dout + rowOffset, 0,
          load<f32>(at(lse, (b * H + h) * T + i)), dot(dout + rowOffset, out + rowOffset, D),
          k + headOffset, v + headOffset, dk + headOffset, dv + headOffset, keyStride,
          max(first, firstKey(i, window)), min(i, last), maskRow, segRow, segRow ? load<i32>(at(segRow, i)) : 0, D, scale,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

/** out = x * rstd * w per row, rstd = 1 / sqrt(mean(x^2) + eps) (saved unless rstd is 0). Work items: rows. */
export function rmsnormForward(
  x: usize, w: usize, out: usize, rstd: usize, rows: i32, dim: i32, eps: f32, start: i32, end: i32,
): void {
  for (let r = start; r < end; r++) {
    const xRow = at(x, r * dim);
    const oRow = at(out, r * dim);
    const rowRstd: f32 = 1 / sqrt<f32>(dot(xRow, xRow, dim) / <f32>dim + eps);
    if (rstd) store<f32>(at(rstd, r), rowRstd);
    const rv = splat(rowRstd);
    let c = 0;
    for (; c + 4 <= dim; c += 4) {
      v128.store(at(oRow, c), f32x4.mul(f32x4.mul(v128.load(at(xRow, c)), rv), v128.load(at(w, c))));
    }
    for (; c < dim; c++) store<f32>(at(oRow, c), load<f32>(at(xRow, c)) * rowRstd * load<f32>(at(w, c)));
  }
}

/**
 * Input half of the RMSNorm backward: dx = rstd * (w*dout - x * rstd^2 * mean(w*dout*x)),
 * overwritten (dx may be dout). Work items: rows.
 */
export function rmsnormBackwardInput(
  x: usize, w: usize, rstd: usize, dout: usize, dx: usize, rows: i32, dim: i32, start: i32, end: i32,
): void {
  for (let r = start; r < end; r++) {
    const xRow = at(x, r * dim);
    const gRow = at(dout, r * dim);
    const dxRow = at(dx, r * dim);
    const rs = load<f32>(at(rstd, r));
    let acc = splat(0);
    let c = 0;
    for (; c + 4 <= dim; c += 4) {
      acc = madd(f32x4.mul(v128.load(at(w, c)), v128.load(at(gRow, c))), v128.load(at(xRow, c)), acc);
    }
    let weighted = hsum(acc);
    for (; c < dim; c++) weighted += load<f32>(at(w, c)) * load<f32>(at(gRow, c)) * load<f32>(at(xRow, c));
    const coef = splat((rs * rs * weighted) / <f32>dim);
    const rv = splat(rs);
    for (c = 0; c + 4 <= dim; c += 4) {
      const wg = f32x4.mul(v128.load(at(w, c)), v128.load(at(gRow, c)));
      v128.store(at(dxRow, c), f32x4.mul(rv, f32x4.sub(wg, f32x4.mul(v128.load(at(xRow, c)), coef))));
    }
    for (; c < dim; c++) {
      const wg = load<f32>(at(w, c)) * load<f32>(at(gRow, c));
      store<f32>(at(dxRow, c), rs * (wg - load<f32>(at(xRow, c)) * f32x4.extract_lane(coef, 0)));
    }
  }
}

/**
 * Weight half of the RMSNorm backward: dw[c] += sum over rows of dout*x*rstd. Work items are
 * columns, so parallel jobs own disjoint slices of dw.
 */
export function rmsnormBackwardWeight(
  x: usize, rstd: usize, dout: usize, dw: usize, rows: i32, dim: i32, start: i32, end: i32,
): void {
  let c = start;
  for (; c + 4 <= end; c += 4) {
    let acc = v128.load(at(dw, c));
    for (let r = 0; r < rows; r++) {
      const gx = f32x4.mul(v128.load(at(dout, r * dim + c)), v128.load(at(x, r * dim + c)));
      acc = madd(gx, v128.load32_splat(at(rstd, r)), acc);
    }
    v128.store(at(dw, c), acc);
  }
  for (; c < end; c++) {
    let acc = load<f32>(at(dw, c));
    for (let r = 0; r < rows; r++) {
      acc += load<f32>(at(dout, r * dim + c)) * load<f32>(at(x, r * dim + c)) * load<f32>(at(rstd, r));
    }
    store<f32>(at(dw, c), acc);
  }
}

// ---------------------------------------------------------------------------------------------
// RoPE

/** [sin, cos] (f64x2) of the f32 angle pos * invFreq, as float32 torch computes it, widened. */
@inline function ropeSinCos(pos: f32, invFreq: f32): v128 {
  return sinCos(<f64>(pos * invFreq));
}

@inline function sinLane(pair: v128): f32 {
  return <f32>f64x2.extract_lane(pair, 0);
}

@inline function cosLane(pair: v128): f32 {
  return <f32>f64x2.extract_lane(pair, 1);
}

/**
 * Rotates pairs (j.., j+half..) of every head of one row: four pairs wide, or the single pair j
 * in lane 0 when not `wide`. `half` is half the rotated part of a head (D/2 unless partial).
 */
@inline function rotateHeads(
  xRow: usize, oRow: usize, heads: i32, D: i32, half: i32, j: i32, cosv: v128, sinv: v128,
  wide: bool,
): void {
  for (let h = 0; h < heads; h++) {
    const first = at(xRow, h * D + j);
    const second = at(xRow, h * D + j + half);
    const x1 = wide ? v128.load(first) : v128.load32_splat(first);
    const x2 = wide ? v128.load(second) : v128.load32_splat(second);
    const o1 = f32x4.sub(f32x4.mul(x1, cosv), f32x4.mul(x2, sinv));
    const o2 = f32x4.add(f32x4.mul(x2, cosv), f32x4.mul(x1, sinv));
    if (wide) {
      v128.store(at(oRow, h * D + j), o1);
      v128.store(at(oRow, h * D + j + half), o2);
    } else {
      v128.store32_lane(at(oRow, h * D + j), o1, 0);
      v128.store32_lane(at(oRow, h * D + j + half), o2, 0);
    }
  }
}

/**
 * Rotate-half RoPE of x [B,T,heads,D] at positions i32 [B,T]; `inverse` rotates by -angle (the
 * backward). out may be x. Only the first `rotaryDim` values of each head turn (pairs j, j +
 * rotaryDim/2: partial rotary, Phi-3); the rest are copied. Pair j turns by position * invFreq[j]
 * (f32 table [rotaryDim/2], the model's possibly scaled frequencies, models/rope-frequencies.ts),
 * with cos and sin multiplied by `scale` (LongRoPE's attention factor; 1 otherwise) in f32.
 * Work items: b * T + t. Pairs are the outer loop so each frequency is read once per call.
 */
export function ropeApply(
  x: usize, out: usize, positions: usize, B: i32, T: i32, heads: i32, D: i32, invFreq: usize,
  inverse: i32, rotaryDim: i32, scale: f32, start: i32, end: i32,
): void {
  const half = rotaryDim >> 1;
  const cosScale = splat(scale);
  const sinScale = splat(inverse ? -scale : scale);
  let j = 0;
  for (; j + 4 <= half; j += 4) {
    const f0 = load<f32>(at(invFreq, j));
    const f1 = load<f32>(at(invFreq, j + 1));
    const f2 = load<f32>(at(invFreq, j + 2));
    const f3 = load<f32>(at(invFreq, j + 3));
    for (let row = start; row < end; row++) {
      const pos = <f32>load<i32>(at(positions, row));
      const a0 = ropeSinCos(pos, f0);
      const a1 = ropeSinCos(pos, f1);
      const a2 = ropeSinCos(pos, f2);
      const a3 = ropeSinCos(pos, f3);
      const cosv = f32x4.mul(cosScale, lanes(cosLane(a0), cosLane(a1), cosLane(a2), cosLane(a3)));
      const sinv = f32x4.mul(sinScale, lanes(sinLane(a0), sinLane(a1), sinLane(a2), sinLane(a3)));
      rotateHeads(at(x, row * heads * D), at(out, row * heads * D), heads, D, half, j, cosv, sinv, true);
    }
  }
  for (; j < half; j++) {
    const freq = load<f32>(at(invFreq, j));
    for (let row = start; row < end; row++) {
      const angle = ropeSinCos(<f32>load<i32>(at(positions, row)), freq);
      const cosv = f32x4.mul(cosScale, splat(cosLane(angle)));
      const sinv = f32x4.mul(sinScale, splat(sinLane(angle)));
      rotateHeads(at(x, row * heads * D), at(out, row * heads * D), heads, D, half, j, cosv, sinv, false);
    }
  }
  if (rotaryDim == D || out == x) return;
  for (let row = start; row < end; row++) {
    for (let h = 0; h < heads; h++) {
      const head = (row * heads + h) * D;
      for (let d = rotaryDim; d < D; d++) store<f32>(at(out, head + d), load<f32>(at(x, head + d)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Element-wise kernels. Each formula is written once on vectors; the scalar tail runs it on a
// splatted element and stores lane 0. Work items: elements.

// Gate activations of the gated MLP, down(act(gate) · up): SiLU (Llama, Qwen) and GELU-tanh
// (Gemma). GELU-tanh is written with the sigmoid: 0.5·x·(1 + tanh(u)) = x·σ(2u),
// u = √(2/π)·(x + 0.044715·x³).
const ACT_SILU: i32 = 0;
const ACT_GELU_TANH: i32 = 1;
const GELU_K: f32 = 0.7978845608028654; // √(2/π)
const GELU_C: f32 = 0.044715;

/** σ(2u) of GELU-tanh at x. */
@inline function geluSigmoidv(x: v128): v128 {
  const u = f32x4.mul(splat(GELU_K), madd(f32x4.mul(splat(GELU_C), x), f32x4.mul(x, x), x));
  return sigmoidv(f32x4.add(u, u));
}

/** act(g). */
@inline function activationv(g: v128, act: i32): v128 {
  return f32x4.mul(g, act == ACT_GELU_TANH ? geluSigmoidv(g) : sigmoidv(g));
}

/** act'(g). */
@inline function activationGradv(g: v128, act: i32): v128 {
  if (act == ACT_GELU_TANH) {
    // d/dx x·σ(2u) = s + x·s·(1 − s)·2u', u' = √(2/π)·(1 + 3·0.044715·x²)
    const s = geluSigmoidv(g);
    const du2 = f32x4.mul(splat(2 * GELU_K), madd(splat(3 * GELU_C), f32x4.mul(g, g), splat(1)));
    return madd(f32x4.mul(f32x4.mul(g, s), f32x4.sub(splat(1), s)), du2, s);
  }
  // silu'(g) = s * (1 + g * (1 - s))
  const s = sigmoidv(g);
  return f32x4.mul(s, madd(g, f32x4.sub(splat(1), s), splat(1)));
}

@inline function gatedForward(gate: usize, up: usize, out: usize, act: i32, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) {
    v128.store(at(out, i), f32x4.mul(activationv(v128.load(at(gate, i)), act), v128.load(at(up, i))));
  }
  for (; i < end; i++) {
    const g = v128.load32_splat(at(gate, i));
    v128.store32_lane(at(out, i), f32x4.mul(activationv(g, act), v128.load32_splat(at(up, i))), 0);
  }
}

@inline function gatedBackwardAt(
  gate: usize, up: usize, dout: usize, dgate: usize, dup: usize, act: i32, wide: bool,
): void {
  const g = wide ? v128.load(gate) : v128.load32_splat(gate);
  const u = wide ? v128.load(up) : v128.load32_splat(up);
  const d = wide ? v128.load(dout) : v128.load32_splat(dout);
  const dg = f32x4.mul(f32x4.mul(d, u), activationGradv(g, act));
  const du = f32x4.mul(d, activationv(g, act));
  if (wide) {
    v128.store(dgate, dg);
    v128.store(dup, du);
  } else {
    v128.store32_lane(dgate, dg, 0);
    v128.store32_lane(dup, du, 0);
  }
}

@inline function gatedBackward(
  gate: usize, up: usize, dout: usize, dgate: usize, dup: usize, act: i32, start: i32, end: i32,
): void {
  let i = start;
  for (; i + 4 <= end; i += 4) gatedBackwardAt(at(gate, i), at(up, i), at(dout, i), at(dgate, i), at(dup, i), act, true);
  for (; i < end; i++) gatedBackwardAt(at(gate, i), at(up, i), at(dout, i), at(dgate, i), at(dup, i), act, false);
}

/** out = silu(gate) * up. */
export function swigluForward(gate: usize, up: usize, out: usize, n: i32, start: i32, end: i32): void {
  gatedForward(gate, up, out, ACT_SILU, start, end);
}

/** dgate = dout * up * silu'(gate), dup = dout * silu(gate); dgate / dup may be gate / up. */
export function swigluBackward(
  gate: usize, up: usize, dout: usize, dgate: usize, dup: usize, n: i32, start: i32, end: i32,
): void {
  gatedBackward(gate, up, dout, dgate, dup, ACT_SILU, start, end);
}

/** out = gelu_tanh(gate) * up. */
export function geluTanhGateForward(gate: usize, up: usize, out: usize, n: i32, start: i32, end: i32): void {
  gatedForward(gate, up, out, ACT_GELU_TANH, start, end);
}

/** dgate = dout * up * gelu_tanh'(gate), dup = dout * gelu_tanh(gate); may alias gate / up. */
export function geluTanhGateBackward(
  gate: usize, up: usize, dout: usize, dgate: usize, dup: usize, n: i32, start: i32, end: i32,
): void {
  gatedBackward(gate, up, dout, dgate, dup, ACT_GELU_TANH, start, end);
}

@inline function adamwAt(
  p: usize, g: usize, m: usize, v: usize, wide: bool,
  decay: v128, beta1: v128, beta2: v128, stepSize: v128, bc2Sqrt: v128, eps: v128,
): void {
  const gv = wide ? v128.load(g) : v128.load32_splat(g);
  const mv = madd(beta1, wide ? v128.load(m) : v128.load32_splat(m), f32x4.mul(f32x4.sub(splat(1), beta1), gv));
  const vv = madd(beta2, wide ? v128.load(v) : v128.load32_splat(v), f32x4.mul(f32x4.sub(splat(1), beta2), f32x4.mul(gv, gv)));
  const denominator = f32x4.add(f32x4.div(f32x4.sqrt(vv), bc2Sqrt), eps);
  const decayed = f32x4.mul(wide ? v128.load(p) : v128.load32_splat(p), decay);
  const pv = f32x4.sub(decayed, f32x4.div(f32x4.mul(stepSize, mv), denominator));
  if (wide) {
    v128.store(p, pv);
    v128.store(m, mv);
    v128.store(v, vv);
  } else {
    v128.store32_lane(p, pv, 0);
    v128.store32_lane(m, mv, 0);
    v128.store32_lane(v, vv, 0);
  }
}

/**
 * PyTorch AdamW: p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 * p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps), bc1 = 1 - b1^t, bc2 = 1 - b2^t.
 */
export function adamwStep(
  p: usize, g: usize, m: usize, v: usize, n: i32,
  lr: f32, beta1: f32, beta2: f32, eps: f32, weightDecay: f32, bc1: f32, bc2: f32,
  start: i32, end: i32,
): void {
  const decay = splat(1 - lr * weightDecay);
  const stepSize = splat(lr / bc1);
  const bc2Sqrt = splat(sqrt<f32>(bc2));
  const b1 = splat(beta1);
  const b2 = splat(beta2);
  const epsv = splat(eps);
  let i = start;
  for (; i + 4 <= end; i += 4) adamwAt(at(p, i), at(g, i), at(m, i), at(v, i), true, decay, b1, b2, stepSize, bc2Sqrt, epsv);
  for (; i < end; i++) adamwAt(at(p, i), at(g, i), at(m, i), at(v, i), false, decay, b1, b2, stepSize, bc2Sqrt, epsv);
}

/** out = a + b. */
/**
 * LoRA dropout (reference-kernels.ts `dropout`): out = x * keep, or 0 where the murmur3 finalizer
 * of seed·φ + i is below `threshold` (unsigned); four elements at a time. out may be x.
 */
export function dropoutApply(
  x: usize, out: usize, n: i32, threshold: u32, keep: f32, seed: u32, start: i32, end: i32,
): void {
  const base = seed * 0x9e3779b1;
  const keepV = f32x4.splat(keep);
  const thresholdV = i32x4.splat(threshold);
  let index = i32x4.add(i32x4.splat(base + <u32>start), i32x4(0, 1, 2, 3));
  let i = start;
  for (; i + 4 <= end; i += 4) {
    let h = index;
    h = i32x4.mul(v128.xor(h, i32x4.shr_u(h, 16)), i32x4.splat(0x85ebca6b));
    h = i32x4.mul(v128.xor(h, i32x4.shr_u(h, 13)), i32x4.splat(0xc2b2ae35));
    h = v128.xor(h, i32x4.shr_u(h, 16));
    const dropped = i32x4.lt_u(h, thresholdV);
    v128.store(at(out, i), v128.andnot(f32x4.mul(v128.load(at(x, i)), keepV), dropped));
    index = i32x4.add(index, i32x4.splat(4));
  }
  for (; i < end; i++) {
    let h = base + <u32>i;
    h = (h ^ (h >>> 16)) * 0x85ebca6b;
    h = (h ^ (h >>> 13)) * 0xc2b2ae35;
    h ^= h >>> 16;
    store<f32>(at(out, i), h < threshold ? 0 : load<f32>(at(x, i)) * keep);
  }
}

export function add(a: usize, b: usize, out: usize, n: i32, start: i32, end: i32): void {
  let i = start;
  for (; i + 4 <= end; i += 4) v128.store(at(out, i), f32x4.add(v128.load(at(a, i)), v128.load(at(b, i))));
  for (; i < end; i++) store<f32>(at(out, i), load<f32>(at(a, i)) + load<f32>(at(b, i)));
}

/** y += alpha * x. */
export function axpy(alpha: f32, x: usize, y: usize, n: i32, start: i32, end: i32): void {
  axpyRow(at(y, start), alpha, at(x, start), end - start);
}

/** out = alpha * x (out may be x). */
export function scale(x: usize, alpha: f32, out: usize, n: i32, start: i32, end: i32): void {
  const av = splat(alpha);
  let i = start;
  for (; i + 4 <= end; i += 4) v128.store(at(out, i), f32x4.mul(av, v128.load(at(x, i))));
  for (; i < end; i++) store<f32>(at(out, i), alpha * load<f32>(at(x, i)));
}

/** Sum of x^2 accumulated in f64 (gradient-norm clipping over many millions of values). */
export function sumSquares(x: usize, n: i32): f64 {
  let even = f64x2.splat(0);
  let odd = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const xv = v128.load(at(x, i));
    const low = f64x2.promote_low_f32x4(xv);
    const high = f64x2.promote_low_f32x4(i32x4.shuffle(xv, xv, 2, 3, 0, 1));
    even = f64x2.add(even, f64x2.mul(low, low));
    odd = f64x2.add(odd, f64x2.mul(high, high));
  }
  const both = f64x2.add(even, odd);
  let sum = f64x2.extract_lane(both, 0) + f64x2.extract_lane(both, 1);
  for (; i < n; i++) {
    const value = <f64>load<f32>(at(x, i));
    sum += value * value;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Softmax and cross-entropy rows

function rowMax(row: usize, n: i32): f32 {
  let acc = splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) acc = f32x4.pmax(acc, v128.load(at(row, i)));
  let result = hmax(acc);
  for (; i < n; i++) result = max<f32>(result, load<f32>(at(row, i)));
  return result;
}

/** sum of exp(row - shift); with `dest` != 0 the exponentials are also stored there. */
function sumExp(row: usize, n: i32, shift: f32, dest: usize): f32 {
  const sv = splat(shift);
  let acc = splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const e = expv(f32x4.sub(v128.load(at(row, i)), sv));
    if (dest) v128.store(at(dest, i), e);
    acc = f32x4.add(acc, e);
  }
  let sum = hsum(acc);
  for (; i < n; i++) {
    const e = expf(load<f32>(at(row, i)) - shift);
    if (dest) store<f32>(at(dest, i), e);
    sum += e;
  }
  return sum;
}

/** out[r] = softmax(x[r]) (out may be x). Work items: rows. */
export function softmaxRows(x: usize, out: usize, rows: i32, cols: i32, start: i32, end: i32): void {
  for (let r = start; r < end; r++) {
    const xRow = at(x, r * cols);
    const oRow = at(out, r * cols);
    const sum = sumExp(xRow, cols, rowMax(xRow, cols), oRow);
    scaleInPlace(oRow, 1 / sum, cols);
  }
}

/**
 * Online log-sum-exp over one vocab chunk, logits [rows, cols] = vocab ids colOffset.. : updates
 * runMax / runSum and sets tgtLogit[r] when targets[r] falls in the chunk. Work items: rows.
 */
export function ceChunkForward(
  logits: usize, rows: i32, cols: i32, colOffset: i32, targets: usize,
  runMax: usize, runSum: usize, tgtLogit: usize, start: i32, end: i32,
): void {
  for (let r = start; r < end; r++) {
    const row = at(logits, r * cols);
    const oldMax = load<f32>(at(runMax, r));
    const newMax = max<f32>(oldMax, rowMax(row, cols));
    const sum = load<f32>(at(runSum, r)) * expf(oldMax - newMax) + sumExp(row, cols, newMax, 0);
    store<f32>(at(runMax, r), newMax);
    store<f32>(at(runSum, r), sum);
    const t = load<i32>(at(targets, r)) - colOffset;
    if (<u32>t < <u32>cols) store<f32>(at(tgtLogit, r), load<f32>(at(row, t)));
  }
}

/**
 * The fused LM-head loss's online softmax over one vocabulary chunk: updates the running max and
 * sum, stores exp(logit - newMax) back in place (the next GEMM accumulates those times the head
 * rows into acc), and rescales acc's row by exp(oldMax - newMax) when the max moved.
 * acc = 0 skips the accumulator. Work items: rows.
 */
export function ceOnlineChunk(
  logits: usize, rows: i32, cols: i32, colOffset: i32, targets: usize,
  runMax: usize, runSum: usize, tgtLogit: usize, acc: usize, accCols: i32, start: i32, end: i32,
): void {
  for (let r = start; r < end; r++) {
    const row = at(logits, r * cols);
    const t = load<i32>(at(targets, r)) - colOffset;
    if (<u32>t < <u32>cols) store<f32>(at(tgtLogit, r), load<f32>(at(row, t)));
    const oldMax = load<f32>(at(runMax, r));
    const newMax = max<f32>(oldMax, rowMax(row, cols));
    const rescale: f32 = oldMax == -Infinity ? 0 : expf(oldMax - newMax);
    store<f32>(at(runSum, r), load<f32>(at(runSum, r)) * rescale + sumExp(row, cols, newMax, row));
    store<f32>(at(runMax, r), newMax);
    if (acc != 0 && rescale != 1) scaleInPlace(at(acc, r * accCols), rescale, accCols);
  }
}

/**
 * In place: logits[r, c] = rowScale[r] * (exp(logits[r, c] - lse[r]) - onehot(targets[r])).
 * Rows with rowScale 0 (unsupervised) become exact zeros. Work items: rows.
 */
export function ceChunkBackward(
  logits: usize, rows: i32, cols: i32, colOffset: i32, targets: usize, lse: usize, rowScale: usize,
  start: i32, end: i32,
): void {
  for (let r = start; r < end; r++) {
    const row = at(logits, r * cols);
    const s = load<f32>(at(rowScale, r));
    if (s == 0) {
      fillZero(row, cols);
      continue;
    }
    sumExp(row, cols, load<f32>(at(lse, r)), row);
    scaleInPlace(row, s, cols);
    const t = load<i32>(at(targets, r)) - colOffset;
    if (<u32>t < <u32>cols) store<f32>(at(row, t), load<f32>(at(row, t)) - s);
  }
}

// ---------------------------------------------------------------------------------------------
// bfloat16 conversion (src / dst of u16 bits)

/** bf16 bits -> f32. Work items: elements. */
export function bf16ToF32(src: usize, dst: usize, n: i32, start: i32, end: i32): void {
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const bits = v128.load(src + (<usize>i << 1));
    v128.store(at(dst, i), i32x4.shl(i32x4.extend_low_i16x8_u(bits), 16));
    v128.store(at(dst, i + 4), i32x4.shl(i32x4.extend_high_i16x8_u(bits), 16));
  }
  for (; i < end; i++) store<u32>(at(dst, i), <u32>load<u16>(src + (<usize>i << 1)) << 16);
}

/** Round-to-nearest-even bf16 bits of four f32 lanes (in the low half of i32 lanes); NaN stays NaN. */
@inline function bf16Bits(u: v128): v128 {
  const lsb = v128.and(i32x4.shr_u(u, 16), i32x4.splat(1));
  const rounded = i32x4.shr_u(i32x4.add(i32x4.add(u, i32x4.splat(0x7fff)), lsb), 16);
  const quietNan = v128.or(i32x4.shr_u(u, 16), i32x4.splat(0x40));
  const isNan = i32x4.gt_s(v128.and(u, i32x4.splat(0x7fffffff)), i32x4.splat(0x7f800000));
  return v128.bitselect(quietNan, rounded, isNan);
}

/** f32 -> bf16 bits, round to nearest even. Work items: elements. */
export function f32ToBf16(src: usize, dst: usize, n: i32, start: i32, end: i32): void {
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const packed = i16x8.narrow_i32x4_u(bf16Bits(v128.load(at(src, i))), bf16Bits(v128.load(at(src, i + 4))));
    v128.store(dst + (<usize>i << 1), packed);
  }
  for (; i < end; i++) {
    store<u16>(dst + (<usize>i << 1), <u16>i32x4.extract_lane(bf16Bits(v128.load32_splat(at(src, i))), 0));
  }
}
