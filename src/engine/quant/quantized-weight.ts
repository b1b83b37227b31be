/**
 * A quantized frozen weight [out, in] on the active backend: its codes, absmax (or nested absmax)
 * and code tables as device tensors, dequantized a tile of rows at a time by the `dequantizeRows`
 * kernel (ops/quantized-linear.ts multiplies each tile), so no dequantized copy of the whole
 * weight exists. It has no gradient: QLoRA trains adapters on top of it.
 */
import { LoraforgeError } from '../../util/errors.ts';
import { Tensor } from '../tensor.ts';
import {
  BLOCK_SIZE_4BIT,
  DYNAMIC_TABLE,
  INT8_POST_SCALE,
  NESTED_BLOCK_SIZE,
  codeBits,
  codeTable,
  type QuantType,
} from './formats.ts';
import {
  CODERS,
  bytesToWords,
  nestedOffset,
  type Coder,
  type QuantizeOptions,
  type QuantizedData,
} from './quantize.ts';

/** Device tensors of quantizeRows' output: codes (bytes in i32 words) and absmax per block. */
interface BlockCodes {
  codes: Tensor;
  absmax: Tensor;
}

/**
 * The flat tensor x quantized on its backend by the `quantizeRows` kernel, in blocks of
 * `blockSize` (`coder` null: int8); `offset` is subtracted first (double quantization).
 */
function quantizeOnDevice(
  x: Tensor,
  blockSize: number,
  bits: 4 | 8,
  coder: Coder | null,
  offset = 0,
): BlockCodes {
  if (x.dtype !== 'f32' && x.dtype !== 'bf16')
    throw new Error(`quantizeOnDevice: ${x.dtype} source (f32 or bf16 expected)`);
  const n = x.size;
  const codeBytes = bits === 4 ? Math.ceil(n / 2) : n;
  const codes = Tensor.empty([Math.max(1, Math.ceil(codeBytes / 4))], 'i32').keep();
  const absmax = Tensor.empty([Math.ceil(n / blockSize)]).keep();
  const bounds = coder && Tensor.from(coder.bounds, [coder.bounds.length]);
  const codeOf = coder && Tensor.from(Int32Array.from(coder.codes), [coder.codes.length], 'i32');
  try {
    x.backend.kernels.quantizeRows(
      {
        x: x.operand(),
        bounds: bounds?.operand() ?? null,
        codeOf: codeOf?.operand() ?? null,
        codes: codes.operand(),
        absmax: absmax.operand(),
      },
      {
        n,
        blockSize,
        bits,
        mode: !coder ? 'int8' : coder.signBit ? 'signed' : 'nearest',
        offset,
        source: x.dtype,
      },
    );
  } finally {
    bounds?.dispose();
    codeOf?.dispose();
  }
  return { codes, absmax };
}

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

  /**
   * A dense [out, in] weight (f32 or bf16, on a backend whose memory the host sees: the double
   * quantization's offset is a host mean of the absmax values) quantized where it lies, bit for
   * bit as engine/quant/quantize.ts on the host; `x` is left to the caller.
   */
  static quantize(x: Tensor, type: QuantType, options: QuantizeOptions = {}): QuantizedWeight {
    const [rows, cols] = x.shape as [number, number];
    const blockSize = type === 'int8' ? cols : BLOCK_SIZE_4BIT;
    const { codes, absmax } =
      type === 'int8'
        ? quantizeOnDevice(x, cols, 8, null)
        : quantizeOnDevice(x, BLOCK_SIZE_4BIT, 4, CODERS[type]);
    let nested: (BlockCodes & { offset: number }) | null = null;
    if (options.doubleQuant && type !== 'int8') {
      const hostView = x.backend.hostView;
      if (!hostView) throw new Error('QuantizedWeight.quantize: double quant needs host memory');
      const bytes = hostView.call(x.backend, absmax.storage, absmax.byteOffset, absmax.bytes);
      const offset = nestedOffset(new Float32Array(bytes.buffer, bytes.byteOffset, absmax.size));
      nested = {
        ...quantizeOnDevice(absmax, NESTED_BLOCK_SIZE, 8, CODERS.dynamic, offset),
        offset,
      };
      absmax.dispose();
    }
    const floats = (values: Float32Array) => Tensor.from(values, [values.length]).keep();
    return new QuantizedWeight(
      type,
      [rows, cols],
      {
        codes,
        absmax: nested ? nested.codes : absmax,
        nestedAbsmax: nested?.absmax ?? null,
        table: floats(codeTable(type)),
        nestedTable: nested && floats(DYNAMIC_TABLE),
      },
      {
        blockSize,
        nestedBlockSize: nested ? NESTED_BLOCK_SIZE : 0,
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
