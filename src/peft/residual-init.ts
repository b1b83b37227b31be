/**
 * The LoRA initialisations that move part of the base weight into the adapter, leaving the base as
 * the residual W − s·B₀·A₀ (so the model starts unchanged). PEFT saves only the trained A and B
 * (and the init's name in the config); loading recomputes A₀, B₀ from the original base.
 * - PiSSA ("pissa"): the top-r singular triplets, W = U·S·Vᵀ:
 *   A₀ = diag(√(S_r/s))·V_rᵀ,  B₀ = U_r·diag(√(S_r/s)).
 * - OLoRA ("olora"): the first r columns of W's QR decomposition: A₀ = R_r, B₀ = Q_r.
 * B₀·A₀ does not depend on the signs a decomposition picks (U_r·S_r·V_rᵀ; Q_r·Q_rᵀ·W), so any
 * exact decomposition reproduces PEFT's residual.
 */

/** Top-r singular triplets of a row-major [rows, cols] matrix, in float64. */
export interface TopSingular {
  values: Float64Array; // [r], descending
  u: Float64Array; // [rows, r]
  v: Float64Array; // [cols, r]
}

/**
 * Eigen-decomposition of a symmetric n×n matrix (row-major, overwritten): Householder reduction
 * to tridiagonal form, then the implicit QL algorithm (the EISPACK tred2 / tql2 pair), O(n³).
 * Returns the eigenvalues and `vectors` with eigenvector j in row j.
 */
function symmetricEigen(
  v: Float64Array,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const at = (r: number, c: number) => r * n + c;
  // Householder tridiagonalisation; v ends up holding the accumulated transformation.
  for (let j = 0; j < n; j++) d[j] = v[at(n - 1, j)]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = v[at(i - 1, j)]!;
        v[at(i, j)] = 0;
        v[at(j, i)] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] = d[k]! / scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        v[at(j, i)] = f;
        g = e[j]! + v[at(j, j)]! * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += v[at(k, j)]! * d[k]!;
          e[k] = e[k]! + v[at(k, j)]! * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] = e[j]! / h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] = e[j]! - hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) v[at(k, j)] = v[at(k, j)]! - (f * e[k]! + g * d[k]!);
        d[j] = v[at(i - 1, j)]!;
        v[at(i, j)] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    v[at(n - 1, i)] = v[at(i, i)]!;
    v[at(i, i)] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = v[at(k, i + 1)]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += v[at(k, i + 1)]! * v[at(k, j)]!;
        for (let k = 0; k <= i; k++) v[at(k, j)] = v[at(k, j)]! - g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) v[at(k, i + 1)] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = v[at(n - 1, j)]!;
    v[at(n - 1, j)] = 0;
  }
  v[at(n - 1, n - 1)] = 1;
  e[0] = 0;
  // Implicit QL on the tridiagonal (d, e), rotating rows of the transposed vectors (contiguous).
  const vt = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) vt[at(c, r)] = v[at(r, c)]!;
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      do {
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] = d[i]! - h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          const rowI = i * n;
          const rowNext = (i + 1) * n;
          for (let k = 0; k < n; k++) {
            const hk = vt[rowNext + k]!;
            vt[rowNext + k] = s * vt[rowI + k]! + c * hk;
            vt[rowI + k] = c * vt[rowI + k]! - s * hk;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  return { values: d, vectors: vt };
}

/**
 * Top-r SVD through the eigenvectors of the smaller Gram matrix (WᵀW or W·Wᵀ); the other side's
 * vectors follow as W·v/σ (or Wᵀ·u/σ).
 */
export function topSingular(w: Float64Array, rows: number, cols: number, r: number): TopSingular {
  const byCols = cols <= rows;
  const n = byCols ? cols : rows;
  const gram = new Float64Array(n * n);
  const at = (i: number, j: number) => w[i * cols + j]!;
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let sum = 0;
      if (byCols) for (let k = 0; k < rows; k++) sum += at(k, i) * at(k, j);
      else for (let k = 0; k < cols; k++) sum += at(i, k) * at(j, k);
      gram[i * n + j] = sum;
      gram[j * n + i] = sum;
    }
  }
  const { values, vectors } = symmetricEigen(gram, n);
  const order = Array.from(values.keys()).sort((x, y) => values[y]! - values[x]!);
  const sigma = Float64Array.from(order.slice(0, r), (i) => Math.sqrt(Math.max(values[i]!, 0)));
  const u = new Float64Array(rows * r);
  const v = new Float64Array(cols * r);
  order.slice(0, r).forEach((e, j) => {
    const [known, other] = byCols ? [v, u] : [u, v];
    const [knownLen, otherLen] = byCols ? [cols, rows] : [rows, cols];
    for (let i = 0; i < knownLen; i++) known[i * r + j] = vectors[e * n + i]!;
    for (let i = 0; i < otherLen; i++) {
      let sum = 0;
      for (let k = 0; k < knownLen; k++)
        sum += (byCols ? at(i, k) : at(k, i)) * vectors[e * n + k]!;
      other[i * r + j] = sigma[j]! > 0 ? sum / sigma[j]! : 0;
    }
  });
  return { values: sigma, u, v };
}

/** PiSSA's starting A₀ [r, in] and B₀ [out, r] for a weight W [out, in] and LoRA scale s (f32). */
export function pissaFactors(
  w: Float32Array,
  outFeatures: number,
  inFeatures: number,
  r: number,
  scale: number,
): { a: Float32Array; b: Float32Array } {
  const { values, u, v } = topSingular(Float64Array.from(w), outFeatures, inFeatures, r);
  const root = values.map((sv) => Math.sqrt(sv / scale));
  const a = new Float32Array(r * inFeatures);
  const b = new Float32Array(outFeatures * r);
  for (let j = 0; j < r; j++) {
    for (let i = 0; i < inFeatures; i++) a[j * inFeatures + i] = root[j]! * v[i * r + j]!;
    for (let o = 0; o < outFeatures; o++) b[o * r + j] = u[o * r + j]! * root[j]!;
  }
  return { a, b };
}

/** OLoRA's A₀ = R_r [r, in] and B₀ = Q_r [out, r]: Gram–Schmidt on W's first r columns, in f64. */
export function oloraFactors(
  w: Float32Array,
  outFeatures: number,
  inFeatures: number,
  r: number,
): { a: Float32Array; b: Float32Array } {
  const q = new Float64Array(outFeatures * r); // column j of Q_r at q[o * r + j]
  for (let j = 0; j < r; j++) {
    const col = Float64Array.from({ length: outFeatures }, (_, o) => w[o * inFeatures + j]!);
    // Twice-applied modified Gram–Schmidt keeps Q orthonormal to f64 precision.
    for (let pass = 0; pass < 2; pass++) {
      for (let k = 0; k < j; k++) {
        let dot = 0;
        for (let o = 0; o < outFeatures; o++) dot += q[o * r + k]! * col[o]!;
        for (let o = 0; o < outFeatures; o++) col[o] = col[o]! - dot * q[o * r + k]!;
      }
    }
    const norm = Math.hypot(...col);
    for (let o = 0; o < outFeatures; o++) q[o * r + j] = norm > 0 ? col[o]! / norm : 0;
  }
  const a = new Float32Array(r * inFeatures);
  for (let j = 0; j < r; j++) {
    for (let i = 0; i < inFeatures; i++) {
      let sum = 0;
      for (let o = 0; o < outFeatures; o++) sum += q[o * r + j]! * w[o * inFeatures + i]!;
      a[j * inFeatures + i] = sum;
    }
  }
  return { a, b: Float32Array.from(q) };
}

export type ResidualInit = 'pissa' | 'olora';

export function isResidualInit(init: string): init is ResidualInit {
  return init === 'pissa' || init === 'olora';
}

/** A₀ / B₀ of a residual init for a weight W [out, in] (f32), rank r and LoRA scale s. */
export function residualFactors(
  init: ResidualInit,
  w: Float32Array,
  outFeatures: number,
  inFeatures: number,
  r: number,
  scale: number,
): { a: Float32Array; b: Float32Array } {
  return init === 'pissa'
    ? pissaFactors(w, outFeatures, inFeatures, r, scale)
    : oloraFactors(w, outFeatures, inFeatures, r);
}
