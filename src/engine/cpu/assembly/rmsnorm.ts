// RMSNorm forward and backward (src/engine/kernels/rmsnorm.ts).
import { dot } from './lib/rows';
import { at, splat, madd, hsum } from './lib/simd';

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
