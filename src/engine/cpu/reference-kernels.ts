/**
 * Plain-JS reference implementations of the CPU kernels (docs/ARCHITECTURE.md, "Kernel
 * signatures"). Same argument lists as `CpuKernels`, with typed arrays in place of pointers and
 * `null` in place of a 0 (absent) pointer. Written for obviousness, not speed: the tests check
 * the wasm kernels against these, and these against finite differences. Intermediate values are
 * JS numbers (f64), so passing Float64Array buffers gives float64 results.
 */

import type { GateActivation } from '../backend.ts';
import { dropoutHash, dropoutKeepScale, dropoutThreshold } from '../dropout.ts';

export type Floats = Float32Array | Float64Array;

/** What a query with no visible key stores as its lse: makes exp(score - lse) = 0 everywhere. */
export const EMPTY_ROW_LSE = Infinity;

function keyVisible(
  b: number,
  j: number,
  p: number,
  kvCap: number,
  keyMask: Int32Array | null,
  segIds: Int32Array | null,
  window: number,
): boolean {
  if (j > p || (window > 0 && j <= p - window)) return false;
  if (keyMask && keyMask[b * kvCap + j] === 0) return false;
  if (segIds && segIds[b * kvCap + j] !== segIds[b * kvCap + p]) return false;
  return true;
}

function dot(a: Floats, aOff: number, b: Floats, bOff: number, n: number): number {
  let s = 0;
  for (let d = 0; d < n; d++) s += a[aOff + d] * b[bOff + d];
  return s;
}

/**
 * Causal grouped-query attention; query i sits at absolute position Tk-Tq+i. `window` > 0 limits
 * each query to itself and the window − 1 keys before it (sliding-window layers).
 */
export function attentionForward(
  q: Floats,
  k: Floats,
  v: Floats,
  out: Floats,
  lse: Floats,
  B: number,
  Tq: number,
  Tk: number,
  kvCap: number,
  H: number,
  KVH: number,
  D: number,
  keyMask: Int32Array | null,
  segIds: Int32Array | null,
  scale: number,
  window = 0,
): void {
  const group = H / KVH;
  const scores = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const p = Tk - Tq + i;
        const qOff = ((b * Tq + i) * H + h) * D;
        let max = -Infinity;
        for (let j = 0; j < Tk; j++) {
          scores[j] = keyVisible(b, j, p, kvCap, keyMask, segIds, window)
            ? scale * dot(q, qOff, k, ((b * kvCap + j) * KVH + kvh) * D, D)
            : -Infinity;
          max = Math.max(max, scores[j]);
        }
        out.fill(0, qOff, qOff + D);
        const lseIndex = (b * H + h) * Tq + i;
        if (max === -Infinity) {
          lse[lseIndex] = EMPTY_ROW_LSE;
          continue;
        }
        let sum = 0;
        for (let j = 0; j < Tk; j++) sum += Math.exp(scores[j] - max);
        for (let j = 0; j < Tk; j++) {
          const prob = Math.exp(scores[j] - max) / sum;
          if (prob === 0) continue;
          const vOff = ((b * kvCap + j) * KVH + kvh) * D;
          for (let d = 0; d < D; d++) out[qOff + d] += prob * v[vOff + d];
        }
        lse[lseIndex] = max + Math.log(sum);
      }
    }
  }
}

/**
 * Flash-style backward from the saved lse: P = exp(S - lse), Di = rowsum(dout * out),
 * dS = P * (dP - Di). Training layout: Tq = Tk = kvCap = T. dq, dk, dv are overwritten; the query
 * heads sharing a kv head sum into its dk / dv.
 */
export function attentionBackward(
  q: Floats,
  k: Floats,
  v: Floats,
  out: Floats,
  lse: Floats,
  dout: Floats,
  dq: Floats,
  dk: Floats,
  dv: Floats,
  B: number,
  T: number,
  H: number,
  KVH: number,
  D: number,
  keyMask: Int32Array | null,
  segIds: Int32Array | null,
  scale: number,
  window = 0,
): void {
  const group = H / KVH;
  dq.fill(0, 0, B * T * H * D);
  dk.fill(0, 0, B * T * KVH * D);
  dv.fill(0, 0, B * T * KVH * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qOff = ((b * T + i) * H + h) * D;
        const rowLse = lse[(b * H + h) * T + i];
        const rowDelta = dot(dout, qOff, out, qOff, D);
        for (let j = 0; j <= i; j++) {
          if (!keyVisible(b, j, i, T, keyMask, segIds, window)) continue;
          const kvOff = ((b * T + j) * KVH + kvh) * D;
          const prob = Math.exp(scale * dot(q, qOff, k, kvOff, D) - rowLse);
          const dScore = prob * (dot(dout, qOff, v, kvOff, D) - rowDelta);
          for (let d = 0; d < D; d++) {
            dq[qOff + d] += scale * dScore * k[kvOff + d];
            dk[kvOff + d] += scale * dScore * q[qOff + d];
            dv[kvOff + d] += prob * dout[qOff + d];
          }
        }
      }
    }
  }
}

/** out = x * rstd * w per row, rstd = 1 / sqrt(mean(x^2) + eps) (saved; `null` skips it). */
export function rmsnormForward(
  x: Floats,
  w: Floats,
  out: Floats,
  rstd: Floats | null,
  rows: number,
  dim: number,
  eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const off = r * dim;
    const rowRstd = 1 / Math.sqrt(dot(x, off, x, off, dim) / dim + eps);
    if (rstd) rstd[r] = rowRstd;
    for (let c = 0; c < dim; c++) out[off + c] = x[off + c] * rowRstd * w[c];
  }
}

/** dx = rstd * (w*dout - x * rstd^2 * mean(w*dout*x)) overwritten; dw += sum_rows dout*x*rstd. */
export function rmsnormBackward(
  x: Floats,
  w: Floats,
  rstd: Floats,
  dout: Floats,
  dx: Floats,
  dw: Floats | null,
  rows: number,
  dim: number,
): void {
  for (let r = 0; r < rows; r++) {
    const off = r * dim;
    const rs = rstd[r];
    let weighted = 0;
    for (let c = 0; c < dim; c++) weighted += w[c] * dout[off + c] * x[off + c];
    const coef = (rs * rs * weighted) / dim;
    for (let c = 0; c < dim; c++) {
      if (dw) dw[c] += dout[off + c] * x[off + c] * rs;
      dx[off + c] = rs * (w[c] * dout[off + c] - x[off + c] * coef);
    }
  }
}

/**
 * cos / sin of the angle pos * invFreq exactly as Hugging Face computes them in float32:
 * angle = f32(pos * inv_freq), cos/sin of that rounded to f32. (inv_freq itself comes from
 * models/rope-frequencies.ts.)
 */
export function ropeAngle(pos: number, invFreq: number): { cos: number; sin: number } {
  const f = Math.fround;
  const angle = f(pos * f(invFreq));
  return { cos: f(Math.cos(angle)), sin: f(Math.sin(angle)) };
}

/**
 * Rotate-half RoPE on x [B,T,heads,D] at positions [B,T]: the first `rotaryDim` values of each
 * head turn in pairs (j, j+rotaryDim/2) by pos * invFreq[j] (invFreq [rotaryDim/2]), the rest are
 * copied; cos and sin are multiplied by `scale` (LongRoPE's attention factor) in f32. `inverse`
 * rotates by -angle, which is also the backward. out may be x.
 */
export function ropeApply(
  x: Floats,
  out: Floats,
  positions: Int32Array,
  B: number,
  T: number,
  heads: number,
  D: number,
  invFreq: Floats,
  inverse: number,
  rotaryDim = D,
  scale = 1,
): void {
  const f = Math.fround;
  const half = rotaryDim / 2;
  for (let bt = 0; bt < B * T; bt++) {
    for (let j = 0; j < half; j++) {
      const angle = ropeAngle(positions[bt], invFreq[j]);
      const cos = f(angle.cos * f(scale));
      const sin = f(angle.sin * f(scale)) * (inverse ? -1 : 1);
      for (let h = 0; h < heads; h++) {
        const off = (bt * heads + h) * D + j;
        const x1 = x[off];
        const x2 = x[off + half];
        out[off] = x1 * cos - x2 * sin;
        out[off + half] = x2 * cos + x1 * sin;
      }
    }
    for (let h = 0; h < heads; h++) {
      for (let d = rotaryDim; d < D; d++)
        out[(bt * heads + h) * D + d] = x[(bt * heads + h) * D + d];
    }
  }
}

function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

/** gelu_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), as torch's approximate='tanh'. */
function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** Each gate activation and its derivative. */
const GATES: Record<GateActivation, { act(x: number): number; grad(x: number): number }> = {
  silu: {
    act: (x) => x * sigmoid(x),
    grad: (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x))),
  },
  gelu_tanh: {
    act: geluTanh,
    grad: (x) => {
      const k = Math.sqrt(2 / Math.PI);
      const t = Math.tanh(k * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    },
  },
};

/** out = act(gate) * up. */
export function gatedForward(
  activation: GateActivation,
  gate: Floats,
  up: Floats,
  out: Floats,
  n: number,
): void {
  const { act } = GATES[activation];
  for (let i = 0; i < n; i++) out[i] = act(gate[i]) * up[i];
}

/** dgate = dout * up * act'(gate), dup = dout * act(gate); outputs may alias gate / up. */
export function gatedBackward(
  activation: GateActivation,
  gate: Floats,
  up: Floats,
  dout: Floats,
  dgate: Floats,
  dup: Floats,
  n: number,
): void {
  const { act, grad } = GATES[activation];
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const u = up[i];
    dgate[i] = dout[i] * u * grad(g);
    dup[i] = dout[i] * act(g);
  }
}

/** out = silu(gate) * up. */
export function swigluForward(gate: Floats, up: Floats, out: Floats, n: number): void {
  gatedForward('silu', gate, up, out, n);
}

/** dgate = dout * up * silu'(gate), dup = dout * silu(gate); outputs may alias gate / up. */
export function swigluBackward(
  gate: Floats,
  up: Floats,
  dout: Floats,
  dgate: Floats,
  dup: Floats,
  n: number,
): void {
  gatedBackward('silu', gate, up, dout, dgate, dup, n);
}

/**
 * Online log-sum-exp over one vocab chunk: logits [rows, cols] cover vocab ids
 * colOffset..colOffset+cols-1. Updates runMax / runSum (start at -inf / 0; the row's lse is
 * runMax + log(runSum) after the last chunk) and sets tgtLogit[r] when targets[r] is in the chunk.
 */
export function ceChunkForward(
  logits: Floats,
  rows: number,
  cols: number,
  colOffset: number,
  targets: Int32Array,
  runMax: Floats,
  runSum: Floats,
  tgtLogit: Floats,
): void {
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    let chunkMax = -Infinity;
    for (let c = 0; c < cols; c++) chunkMax = Math.max(chunkMax, logits[off + c]);
    const newMax = Math.max(runMax[r], chunkMax);
    let sum = runSum[r] * Math.exp(runMax[r] - newMax);
    for (let c = 0; c < cols; c++) sum += Math.exp(logits[off + c] - newMax);
    runMax[r] = newMax;
    runSum[r] = sum;
    const t = targets[r] - colOffset;
    if (t >= 0 && t < cols) tgtLogit[r] = logits[off + t];
  }
}

/**
 * In place: logits[r, c] = rowScale[r] * (exp(logits[r, c] - lse[r]) - onehot(targets[r])[c]).
 * Rows with rowScale 0 (unsupervised) become exact zeros.
 */
export function ceChunkBackward(
  logits: Floats,
  rows: number,
  cols: number,
  colOffset: number,
  targets: Int32Array,
  lse: Floats,
  rowScale: Floats,
): void {
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    const s = rowScale[r];
    for (let c = 0; c < cols; c++) {
      const onehot = targets[r] === colOffset + c ? 1 : 0;
      logits[off + c] = s === 0 ? 0 : s * (Math.exp(logits[off + c] - lse[r]) - onehot);
    }
  }
}

/** PyTorch AdamW; bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. */
export function adamwStep(
  p: Floats,
  g: Floats,
  m: Floats,
  v: Floats,
  n: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  bc1: number,
  bc2: number,
): void {
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < n; i++) {
    p[i] *= 1 - lr * weightDecay;
    m[i] = beta1 * m[i] + (1 - beta1) * g[i];
    v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
    p[i] -= (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
  }
}

/** out = a + b. */
/** out = x / (1 - p), or 0 where dropoutHash(seed, i) < dropoutThreshold(p); out may be x. */
export function dropout(x: Floats, out: Floats, n: number, p: number, seed: number): void {
  const threshold = dropoutThreshold(p);
  const keep = dropoutKeepScale(p);
  for (let i = 0; i < n; i++) out[i] = dropoutHash(seed, i) < threshold ? 0 : x[i]! * keep;
}

export function add(a: Floats, b: Floats, out: Floats, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/** y += alpha * x. */
export function axpy(alpha: number, x: Floats, y: Floats, n: number): void {
  for (let i = 0; i < n; i++) y[i] += alpha * x[i];
}

/** out = alpha * x. */
export function scale(x: Floats, alpha: number, out: Floats, n: number): void {
  for (let i = 0; i < n; i++) out[i] = alpha * x[i];
}

/** Sum of x^2 (for gradient-norm clipping). */
export function sumSquares(x: Floats, n: number): number {
  return dot(x, 0, x, 0, n);
}

/** Row-wise softmax (sampling): out[r] = exp(x[r] - max) / sum. */
export function softmaxRows(x: Floats, out: Floats, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[off + c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[off + c] - max);
    for (let c = 0; c < cols; c++) out[off + c] = Math.exp(x[off + c] - max) / sum;
  }
}

/** bfloat16 bits -> f32. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array, n: number): void {
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
}

/** f32 -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array, n: number): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < n; i++) {
    const u = bits[i];
    if ((u & 0x7fffffff) > 0x7f800000) dst[i] = (u >>> 16) | 0x40;
    else dst[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
}

/**
 * One vocabulary chunk of the online-softmax cross-entropy: updates running max / sum, stores
 * exp(logit − max) back into the chunk and rescales the accumulator rows when the max moves.
 */
export function ceOnlineChunk(
  logits: Floats,
  rows: number,
  cols: number,
  colOffset: number,
  targets: Int32Array,
  runMax: Floats,
  runSum: Floats,
  tgtLogit: Floats,
  acc: Floats | null,
  accCols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    let chunkMax = -Infinity;
    for (let c = 0; c < cols; c++) if (logits[row + c]! > chunkMax) chunkMax = logits[row + c]!;
    const target = targets[r]! - colOffset;
    if (target >= 0 && target < cols) tgtLogit[r] = logits[row + target]!;
    const oldMax = runMax[r]!;
    const newMax = Math.max(oldMax, chunkMax);
    const rescale = oldMax === -Infinity ? 0 : Math.exp(oldMax - newMax);
    let sum = 0;
    for (let c = 0; c < cols; c++) {
      const e = Math.exp(logits[row + c]! - newMax);
      logits[row + c] = e;
      sum += e;
    }
    runSum[r] = runSum[r]! * rescale + sum;
    runMax[r] = newMax;
    if (acc && rescale !== 1) {
      const a = r * accCols;
      for (let c = 0; c < accCols; c++) acc[a + c]! *= rescale;
    }
  }
}
