/**
 * x·Wᵀ + b with a quantized W (engine/quant), tile by tile: a tile of W's rows is dequantized into
 * an f32 scratch tile, multiplied into its columns of y, and the next tile reuses the scratch; a
 * few rows of x (decoding) are multiplied straight from the codes instead. The input gradient
 * dx = dy·W goes tile by tile; W itself has no gradient (frozen).
 */
import type { QuantizedWeight } from '../quant/quantized-weight.ts';
import { Tensor } from '../tensor.ts';
import { kernels, matrixDims, type OutputBlock } from './util.ts';

/** Calls `run(tile, firstRow, rows)` over W's rows [offset, offset + count) with one scratch tile. */
function forEachTile(
  w: QuantizedWeight,
  { offset, count }: OutputBlock,
  run: (tile: Tensor, start: number, rows: number) => void,
): void {
  const tileRows = Math.min(w.tileRows, count);
  const tile = Tensor.empty([tileRows, w.shape[1]]);
  try {
    for (let start = 0; start < count; start += tileRows) {
      const rows = Math.min(tileRows, count - start);
      w.dequantizeRowsInto(tile, offset + start, rows);
      run(tile, start, rows);
    }
  } finally {
    tile.dispose();
  }
}

/**
 * Rows of x up to which y = x·Wᵀ reads W's codes directly (quantizedMatmul: decoding, where a
 * dequantized tile would cost as much as the product); more rows go tile by tile through GEMM.
 */
export const DIRECT_ROWS = 8;

/** y [rows, block.count] = x·W_blockᵀ + b_block (y is written whole). */
export function quantizedMatmulInto(
  x: Tensor,
  w: QuantizedWeight,
  bias: Tensor | null,
  block: OutputBlock,
  y: Tensor,
): void {
  const [rows, inFeatures] = matrixDims(x);
  if (rows <= DIRECT_ROWS) {
    w.multiplyInto(x, rows, block.offset, block.count, bias, y, block.count);
    return;
  }
  forEachTile(w, block, (tile, start, count) =>
    kernels().gemm(x.operand(), tile.operand(), y.operand(start), {
      m: rows,
      n: count,
      k: inFeatures,
      transB: true,
      ldc: block.count,
      bias: bias?.operand(block.offset + start),
    }),
  );
}

/** dx [rows, in] = beta·dx + dy·W_block (dy [rows, block.count]). */
export function quantizedInputGrad(
  dy: Tensor,
  w: QuantizedWeight,
  block: OutputBlock,
  dx: Tensor,
  beta: number,
): void {
  const rows = matrixDims(dy)[0];
  forEachTile(w, block, (tile, start, count) =>
    kernels().gemm(dy.operand(start), tile.operand(), dx.operand(), {
      m: rows,
      n: w.shape[1],
      k: count,
      lda: block.count,
      beta: start === 0 ? beta : 1,
    }),
  );
}
