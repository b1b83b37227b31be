/**
 * Column blocks of a matrix as separate tensors, for fused projections whose one output feeds
 * several consumers (Phi-3's qkv_proj → q, k, v; gate_up_proj → gate, up). Keeping the fused
 * matrix as one projection keeps one LoRA A/B pair over its whole output, as PEFT has it; the
 * blocks are then copied out (tokens × outputs floats, small beside the projection's GEMM) so
 * that RoPE and attention read contiguous rows.
 */
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { kernels, matrixDims, zeroedGrad } from './util.ts';

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * x [..., Σ widths] → one tensor [..., widths[i]] per block, left to right. Each block is a
 * gather of rows of x seen as [rows · Σ widths / u, u] with u the widths' common divisor (the
 * gatherRows kernel); its backward scatter-adds the block's gradient back (scatterAddRows).
 */
export function splitColumns(x: Tensor, widths: readonly number[]): Tensor[] {
  const [rows, cols] = matrixDims(x);
  if (widths.reduce((sum, w) => sum + w, 0) !== cols) {
    throw new Error(`splitColumns: widths [${widths}] do not add up to ${cols} columns`);
  }
  const unit = widths.reduce(gcd);
  const unitsPerRow = cols / unit;
  const k = kernels();
  let offset = 0;
  return widths.map((width) => {
    const units = width / unit;
    const idx = new Int32Array(rows * units);
    for (let r = 0; r < rows; r++) {
      for (let u = 0; u < units; u++) idx[r * units + u] = r * unitsPerRow + offset + u;
    }
    offset += units;
    const index = Tensor.from(idx, [idx.length], 'i32');
    const out = Tensor.empty([...x.shape.slice(0, -1), width]);
    k.gatherRows(x.operand(), index.operand(), out.operand(), idx.length, unit);
    record(out, [x], (dy) => {
      k.scatterAddRows(dy.operand(), index.operand(), zeroedGrad(x).operand(), idx.length, unit);
    });
    return out;
  });
}
