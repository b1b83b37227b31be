/** RMSNorm over rows of `dim` values (with a [D] weight over [tokens, H·D] it is the per-head q/k norm). */
import { defineKernel } from './spec.ts';

/** out = x · rstd · w per row, rstd = 1 / sqrt(mean(x²) + eps), saved for the backward (null skips it). */
export const rmsnormForward = defineKernel({
  name: 'rmsnormForward',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    w: { dtype: 'f32', access: 'read' },
    out: { dtype: 'f32', access: 'write' },
    rstd: { dtype: 'f32', access: 'write', optional: true },
  },
  params: { rows: 'u32', dim: 'u32', eps: 'f32' },
  reference({ x, w, out, rstd }, { rows, dim, eps }) {
    for (let r = 0; r < rows; r++) {
      const off = r * dim;
      let squares = 0;
      for (let c = 0; c < dim; c++) squares += x[off + c]! * x[off + c]!;
      const rowRstd = 1 / Math.sqrt(squares / dim + eps);
      if (rstd) rstd[r] = rowRstd;
      for (let c = 0; c < dim; c++) out[off + c] = x[off + c]! * rowRstd * w[c]!;
    }
  },
});

/** dx = rstd·(w·dout − x·rstd²·mean(w·dout·x)) overwritten; dw += Σ_rows dout·x·rstd (null skips it). */
export const rmsnormBackward = defineKernel({
  name: 'rmsnormBackward',
  buffers: {
    x: { dtype: 'f32', access: 'read' },
    w: { dtype: 'f32', access: 'read' },
    rstd: { dtype: 'f32', access: 'read' },
    dout: { dtype: 'f32', access: 'read' },
    dx: { dtype: 'f32', access: 'write' },
    dw: { dtype: 'f32', access: 'read_write', optional: true },
  },
  params: { rows: 'u32', dim: 'u32' },
  reference({ x, w, rstd, dout, dx, dw }, { rows, dim }) {
    for (let r = 0; r < rows; r++) {
      const off = r * dim;
      const rs = rstd[r]!;
      let weighted = 0;
      for (let c = 0; c < dim; c++) weighted += w[c]! * dout[off + c]! * x[off + c]!;
      const coef = (rs * rs * weighted) / dim;
      for (let c = 0; c < dim; c++) {
        if (dw) dw[c] = dw[c]! + dout[off + c]! * x[off + c]! * rs;
        dx[off + c] = rs * (w[c]! * dout[off + c]! - x[off + c]! * coef);
      }
    }
  },
});

export const RMSNORM = { rmsnormForward, rmsnormBackward } as const;
