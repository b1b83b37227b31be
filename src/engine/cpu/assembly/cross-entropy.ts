// The chunked cross-entropy of the fused LM-head loss (src/engine/kernels/cross-entropy.ts).
// Work items: rows.
import { fillZero, scaleInPlace } from './lib/rows';
import { expv, expf } from './lib/math';
import { at, splat, hsum, hmax } from './lib/simd';

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

/**
 * The fused LM-head loss's online softmax over one vocabulary chunk: updates the running max and
 * sum, stores exp(logit - newMax) back in place (the next GEMM accumulates those times the head
 * rows into acc), and rescales acc's row by exp(oldMax - newMax) when the max moved.
 * acc = 0 skips the accumulator. Work items: rows.
 */
export function ceOnlineChunk(
  logits: usize, targets: usize, runMax: usize, runSum: usize, tgtLogit: usize, acc: usize,
  rows: i32, cols: i32, colOffset: i32, accCols: i32, start: i32, end: i32,
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
  logits: usize, targets: usize, lse: usize, rowScale: usize, rows: i32, cols: i32, colOffset: i32,
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
