/**
 * A quantized frozen weight [out, in] on the active backend: its codes, absmax (or nested absmax)
 * and code tables as device tensors, dequantized a tile of rows at a time by the `dequantizeRows`
 * kernel (ops/quantized-linear.ts multiplies each tile), so no dequantized copy of the whole
 * weight exists. It has no gradient: QLoRA trains adapters on top of it.
 */
import { LoraforgeError } from '../../util/errors.ts';
import { Tensor } from '../tensor.ts';
import { INT8_POST_SCALE, codeBits, type QuantType } from './formats.ts';
import { bytesToWords, type QuantizedData } from './quantize.ts';

/** Bytes of the f32 tile a quantized GEMM dequantizes at a time (rows = this / (in · 4)). */
export const TILE_BYTES = 4 << 20;

export class QuantizedWeight {
  /** Rows of W dequantized per tile. */
  tileRows: number;

  private constructor(
    readonly type: QuantType,
    readonly shape: readonly [number, number],
    private readonly data: {
      codes: Tensor;
      absmax: Tensor;
      nestedAbsmax: Tensor | null;
      table: Tensor;
      nestedTable: Tensor | null;
    },
    private readonly layout: {
      blockSize: number;
      nestedBlockSize: number;
      nestedOffset: number;
    },
  ) {
    this.tileRows = Math.max(1, Math.min(shape[0], Math.floor(TILE_BYTES / (shape[1] * 4))));
  }

  /** Uploads host quantized data (kept tensors: the model owns them until `dispose`). */
  static upload(q: QuantizedData): QuantizedWeight {
    const words = (bytes: Uint8Array) => {
      const w = bytesToWords(bytes);
      return Tensor.from(w, [w.length], 'i32').keep();
    };
    const floats = (values: Float32Array) => Tensor.from(values, [values.length]).keep();
    const nested = q.nested;
    return new QuantizedWeight(
      q.type,
      q.shape,
      {
        codes: words(q.codes),
        absmax: nested ? words(nested.codes) : floats(q.absmax!),
        nestedAbsmax: nested && floats(nested.absmax),
        table: floats(q.table),
        nestedTable: nested && floats(nested.table),
      },
      {
        blockSize: q.blockSize,
        nestedBlockSize: nested?.blockSize ?? 0,
        nestedOffset: nested?.offset ?? 0,
      },
    );
  }

  /** Device bytes held (codes, absmax, tables). */
  get bytes(): number {
    return Object.values(this.data).reduce((sum, t) => sum + (t?.bytes ?? 0), 0);
  }

  /** The quantized buffers and layout params both kernels take. */
  private layoutArgs() {
    const { codes, absmax, nestedAbsmax, table, nestedTable } = this.data;
    return {
      buffers: {
        codes: codes.operand(),
        absmax: absmax.operand(),
        nestedAbsmax: nestedAbsmax?.operand() ?? null,
        table: table.operand(),
        nestedTable: nestedTable?.operand() ?? null,
      },
      params: {
        cols: this.shape[1],
        bits: codeBits(this.type),
        blockSize: this.layout.blockSize,
        nested: nestedAbsmax !== null,
        nestedBlockSize: this.layout.nestedBlockSize,
        nestedOffset: this.layout.nestedOffset,
        postScale: this.type === 'int8' ? INT8_POST_SCALE : 1,
      },
    };
  }

  /** out [rows, in] f32 = rows firstRow … firstRow + rows − 1 of W, dequantized. */
  dequantizeRowsInto(out: Tensor, firstRow: number, rows: number): void {
    const { buffers, params } = this.layoutArgs();
    out.backend.kernels.dequantizeRows(
      { ...buffers, out: out.operand() },
      { ...params, firstRow, rows },
    );
  }

  /**
   * y [rows, count] (row stride ldy) = x [rows, in] · W[firstRow, firstRow + count)ᵀ + bias,
   * straight from the codes (for a few rows of x).
   */
  multiplyInto(
    x: Tensor,
    rows: number,
    firstRow: number,
    count: number,
    bias: Tensor | null,
    y: Tensor,
    ldy: number,
  ): void {
    const { buffers, params } = this.layoutArgs();
    y.backend.kernels.quantizedMatmul(
      { ...buffers, x: x.operand(), bias: bias?.operand(firstRow) ?? null, y: y.operand() },
      { ...params, rows, firstRow, count, ldy },
    );
  }

  dispose(): void {
    for (const t of Object.values(this.data)) t?.dispose();
  }
}

/** What a frozen linear layer's weight may be: a dense tensor or a quantized one. */
export type BaseWeight = Tensor | QuantizedWeight;

/** `w` as a dense tensor, for what needs W's values (DoRA's norms, PiSSA); quantized: refused. */
export function denseWeight(w: BaseWeight, what: string): Tensor {
  if (w instanceof Tensor) return w;
  throw new LoraforgeError(
    `${what} needs the dense base weight, and this one is ${w.type}-quantized`,
    'load the model without quantization for this',
  );
}
