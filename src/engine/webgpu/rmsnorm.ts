/**
 * RMSNorm: out = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps) per row (saved for backward).
 * Forward and dx use one workgroup per row (row sums reduced in workgroup memory); dw sums over
 * rows, so it is a separate one-thread-per-column kernel.
 */
import type { KernelDef } from './kernel-def.ts';
import { withReductions } from './wgsl-reduce.ts';
import type { BufferRef } from './runner.ts';
import { RMSNORM } from '../kernels/rmsnorm.ts';
import type { GpuTable } from './kernel-table.ts';

const WORKGROUP = 256;

const withRowSum = (def: KernelDef, subgroups: boolean) =>
  withReductions(def, WORKGROUP, { rowSum: 'sum' }, subgroups);

/** Row index of a one-workgroup-per-row launch laid out by `grid1d`. */
const ROW = 'let row = wid.x + wid.y * nwg.x;';

function forwardKernel(saveRstd: boolean): KernelDef {
  return {
    key: `rmsnorm-forward${saveRstd ? ':rstd' : ''}`,
    params: { rows: 'u32', dim: 'u32', eps: 'f32' },
    buffers: [
      { name: 'x', dtype: 'f32', access: 'read' },
      { name: 'w', dtype: 'f32', access: 'read' },
      { name: 'out', dtype: 'f32', access: 'read_write' },
      ...(saveRstd ? [{ name: 'rstd', dtype: 'f32' as const, access: 'read_write' as const }] : []),
    ],
    workgroupSize: [WORKGROUP],
    body: `
  ${ROW}
  if (row >= P.rows) { return; }
  let base = row * P.dim;
  var acc = 0.0;
  for (var j = lid.x; j < P.dim; j += ${WORKGROUP}u) {
    let value = x[P.x_off + base + j];
    acc = fma(value, value, acc);
  }
  let r = 1.0 / sqrt(rowSum(lid.x, acc) / f32(P.dim) + P.eps);
  for (var j = lid.x; j < P.dim; j += ${WORKGROUP}u) {
    out[P.out_off + base + j] = x[P.x_off + base + j] * r * w[P.w_off + j];
  }
  ${saveRstd ? 'if (lid.x == 0u) { rstd[P.rstd_off + row] = r; }' : ''}
`,
  };
}

// dx_j = r * w_j * g_j - x_j * r^3 / dim * sum_k(g_k * w_k * x_k)
const BACKWARD_DX: KernelDef = {
  key: 'rmsnorm-backward-dx',
  params: { rows: 'u32', dim: 'u32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read' },
    { name: 'w', dtype: 'f32', access: 'read' },
    { name: 'rstd', dtype: 'f32', access: 'read' },
    { name: 'dout', dtype: 'f32', access: 'read' },
    { name: 'dx', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [WORKGROUP],
  body: `
  ${ROW}
  if (row >= P.rows) { return; }
  let base = row * P.dim;
  var acc = 0.0;
  for (var j = lid.x; j < P.dim; j += ${WORKGROUP}u) {
    acc += dout[P.dout_off + base + j] * w[P.w_off + j] * x[P.x_off + base + j];
  }
  let r = rstd[P.rstd_off + row];
  let coef = rowSum(lid.x, acc) * r * r * r / f32(P.dim);
  for (var j = lid.x; j < P.dim; j += ${WORKGROUP}u) {
    let xj = x[P.x_off + base + j];
    dx[P.dx_off + base + j] = r * w[P.w_off + j] * dout[P.dout_off + base + j] - xj * coef;
  }
`,
};

// dw_j += sum_rows g_j * x_j * r
const BACKWARD_DW: KernelDef = {
  key: 'rmsnorm-backward-dw',
  params: { rows: 'u32', dim: 'u32' },
  buffers: [
    { name: 'x', dtype: 'f32', access: 'read' },
    { name: 'rstd', dtype: 'f32', access: 'read' },
    { name: 'dout', dtype: 'f32', access: 'read' },
    { name: 'dw', dtype: 'f32', access: 'read_write' },
  ],
  workgroupSize: [WORKGROUP],
  body: `
  let j = gid.x;
  if (j >= P.dim) { return; }
  var acc = 0.0;
  for (var row = 0u; row < P.rows; row++) {
    let i = row * P.dim + j;
    acc += dout[P.dout_off + i] * x[P.x_off + i] * rstd[P.rstd_off + row];
  }
  dw[P.dw_off + j] += acc;
`,
};

export const rmsnorm: GpuTable<typeof RMSNORM> = {
  /** rstd `[rows]` is saved for backward; null skips it (inference). */
  rmsnormForward: ({ x, w, out, rstd }, { rows, dim, eps }, runner) => {
    runner.dispatch(
      withRowSum(forwardKernel(rstd !== null), runner.subgroups),
      {
        x: { ref: x, elements: rows * dim },
        w: { ref: w, elements: dim },
        out: { ref: out, elements: rows * dim },
        ...(rstd ? { rstd: { ref: rstd, elements: rows } } : {}),
      },
      { rows, dim, eps },
      runner.grid1d(rows),
    );
  },
  /** dx overwritten; dw accumulated (null skips it, e.g. for a frozen norm weight). */
  rmsnormBackward: ({ x, w, rstd, dout, dx, dw }, { rows, dim }, runner) => {
    const rowsArg = { ref: rstd, elements: rows };
    const matrix = (ref: BufferRef) => ({ ref, elements: rows * dim });
    runner.dispatch(
      withRowSum(BACKWARD_DX, runner.subgroups),
      {
        x: matrix(x),
        w: { ref: w, elements: dim },
        rstd: rowsArg,
        dout: matrix(dout),
        dx: matrix(dx),
      },
      { rows, dim },
      runner.grid1d(rows),
    );
    if (dw) {
      runner.dispatch(
        BACKWARD_DW,
        { x: matrix(x), rstd: rowsArg, dout: matrix(dout), dw: { ref: dw, elements: dim } },
        { rows, dim },
        [Math.ceil(dim / WORKGROUP)],
      );
    }
  },
};
