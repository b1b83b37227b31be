/**
 * PiSSA (PEFT's init_lora_weights="pissa"): A and B start as the top-r singular triplets of the base
 * weight, W = U·S·Vᵀ:  A₀ = diag(√(S_r/s))·V_rᵀ,  B₀ = U_r·diag(√(S_r/s)),  and the base weight
 * becomes the residual W − s·B₀·A₀. PEFT saves only the trained A and B (and "pissa" in the
 * config); loading recomputes the SVD of the original base. The top-r part U_r·S_r·V_rᵀ is
 * unique whatever the signs the SVD picks, so any exact SVD reproduces PEFT's residual.
 */

/** Top-r singular triplets of a row-major [rows, cols] matrix, in float64. */
export interface TopSingular {
  values: Float64Array; // [r], descending
  u: Float64Array; // [rows, r]
  v: Float64Array; // [cols, r]
}

/** Eigen-decomposition of a symmetric n×n matrix by cyclic Jacobi rotations (in place). */
function symmetricEigen(
  a: Float64Array,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  const vectors = new Float64Array(n * n);
  for (let i = 0; i < n; i++) vectors[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < n * n; i++) total += a[i]! * a[i]!;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off <= 1e-30 * total) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          // Columns p and q, then rows p and q, of A ← Jᵀ·A·J.
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = vectors[k * n + p]!;
          const vkq = vectors[k * n + q]!;
          vectors[k * n + p] = c * vkp - s * vkq;
          vectors[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => a[i * n + i]!), vectors };
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
    for (let i = 0; i < knownLen; i++) known[i * r + j] = vectors[i * n + e]!;
    for (let i = 0; i < otherLen; i++) {
      let sum = 0;
      for (let k = 0; k < knownLen; k++)
        sum += (byCols ? at(i, k) : at(k, i)) * vectors[k * n + e]!;
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
