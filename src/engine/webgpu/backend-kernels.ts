/**
 * The engine's `Kernels` interface on WebGPU: turns each `Operand` (storage + byte offset + dtype)
 * into a buffer reference for the WGSL kernels of `WebGpuKernels`. A GPU buffer records neither
 * dtype nor row count, so those come from the operand: dtypes directly, and the row count of a
 * table read or written through an index list as what fits between the offset and the end of
 * its storage (the indices live on the GPU, so which rows are touched is unknown here).
 */
import type {
  AttentionDims,
  GateActivation,
  GemmOptions,
  Kernels,
  Operand,
  Storage,
} from '../backend.ts';
import { DTYPE_BYTES, type DType } from '../dtype.ts';
import type { BufferRef } from './buffer-ref.ts';
import type { GemmDtype } from './gemm.ts';
import type { WebGpuKernels } from './kernels.ts';

export interface GpuStorage extends Storage {
  readonly buffer: GPUBuffer;
}

function bufferRef(o: Operand): BufferRef {
  return { buffer: (o.storage as GpuStorage).buffer, offset: o.byteOffset };
}

function optionalRef(o: Operand | null): BufferRef | null {
  return o ? bufferRef(o) : null;
}

function floatDType(dtype: DType, what: string): GemmDtype {
  if (dtype === 'i32') throw new Error(`${what} on an i32 tensor`);
  return dtype;
}

/** Whole rows of `cols` elements between the operand's offset and the end of its storage. */
function rowsInStorage(o: Operand, cols: number): number {
  return Math.floor((o.storage.bytes - o.byteOffset) / (cols * DTYPE_BYTES[o.dtype]));
}

export class WebGpuKernelSet implements Kernels {
  constructor(private readonly gpu: WebGpuKernels) {}

  gemm(a: Operand, b: Operand, c: Operand, o: GemmOptions): void {
    this.gpu.gemm({
      ...o,
      a: bufferRef(a),
      b: bufferRef(b),
      c: bufferRef(c),
      bias: optionalRef(o.bias ?? null),
      aDtype: floatDType(a.dtype, 'gemm'),
      bDtype: floatDType(b.dtype, 'gemm'),
    });
  }

  attentionForward(
    q: Operand,
    k: Operand,
    v: Operand,
    out: Operand,
    lse: Operand,
    keyMask: Operand | null,
    segmentIds: Operand | null,
    d: AttentionDims,
  ): void {
    this.gpu.attentionForward(
      bufferRef(q),
      bufferRef(k),
      bufferRef(v),
      bufferRef(out),
      bufferRef(lse),
      d.batch,
      d.queryLen,
      d.keyLen,
      d.kvCapacity,
      d.heads,
      d.kvHeads,
      d.headDim,
      optionalRef(keyMask),
      optionalRef(segmentIds),
      d.scale,
      d.window ?? 0,
    );
  }

  attentionBackward(
    q: Operand,
    k: Operand,
    v: Operand,
    out: Operand,
    lse: Operand,
    dout: Operand,
    dq: Operand,
    dk: Operand,
    dv: Operand,
    keyMask: Operand | null,
    segmentIds: Operand | null,
    d: AttentionDims,
  ): void {
    this.gpu.attentionBackward(
      bufferRef(q),
      bufferRef(k),
      bufferRef(v),
      bufferRef(out),
      bufferRef(lse),
      bufferRef(dout),
      bufferRef(dq),
      bufferRef(dk),
      bufferRef(dv),
      d.batch,
      d.queryLen,
      d.heads,
      d.kvHeads,
      d.headDim,
      optionalRef(keyMask),
      optionalRef(segmentIds),
      d.scale,
      d.window ?? 0,
    );
  }

  rmsnormForward(
    x: Operand,
    w: Operand,
    out: Operand,
    rstd: Operand,
    rows: number,
    dim: number,
    eps: number,
  ): void {
    this.gpu.rmsnormForward(
      bufferRef(x),
      bufferRef(w),
      bufferRef(out),
      bufferRef(rstd),
      rows,
      dim,
      eps,
    );
  }

  rmsnormBackward(
    x: Operand,
    w: Operand,
    rstd: Operand,
    dout: Operand,
    dx: Operand,
    dw: Operand | null,
    rows: number,
    dim: number,
  ): void {
    this.gpu.rmsnormBackward(
      bufferRef(x),
      bufferRef(w),
      bufferRef(rstd),
      bufferRef(dout),
      bufferRef(dx),
      optionalRef(dw),
      rows,
      dim,
    );
  }

  ropeApply(
    x: Operand,
    out: Operand,
    positions: Operand,
    batch: number,
    seq: number,
    heads: number,
    headDim: number,
    invFreq: Operand,
    inverse: boolean,
    rotaryDim = headDim,
    scale = 1,
  ): void {
    this.gpu.ropeApply(
      bufferRef(x),
      bufferRef(out),
      bufferRef(positions),
      batch,
      seq,
      heads,
      headDim,
      bufferRef(invFreq),
      inverse,
      rotaryDim,
      scale,
    );
  }

  gatedForward(
    activation: GateActivation,
    gate: Operand,
    up: Operand,
    out: Operand,
    n: number,
  ): void {
    this.gpu.gatedForward(activation, bufferRef(gate), bufferRef(up), bufferRef(out), n);
  }

  gatedBackward(
    activation: GateActivation,
    gate: Operand,
    up: Operand,
    dout: Operand,
    dgate: Operand,
    dup: Operand,
    n: number,
  ): void {
    this.gpu.gatedBackward(
      activation,
      bufferRef(gate),
      bufferRef(up),
      bufferRef(dout),
      bufferRef(dgate),
      bufferRef(dup),
      n,
    );
  }

  embeddingForward(table: Operand, ids: Operand, out: Operand, count: number, dim: number): void {
    this.gpu.embeddingForward(
      bufferRef(table),
      floatDType(table.dtype, 'embedding'),
      rowsInStorage(table, dim),
      bufferRef(ids),
      bufferRef(out),
      count,
      dim,
    );
  }

  embeddingBackward(
    dout: Operand,
    ids: Operand,
    dTable: Operand,
    count: number,
    dim: number,
  ): void {
    this.scatterAddRows(dout, ids, dTable, count, dim);
  }

  axpby(x: Operand, y: Operand, n: number, alpha: number, beta: number): void {
    this.gpu.axpby(bufferRef(x), bufferRef(y), n, alpha, beta);
  }

  add(a: Operand, b: Operand, out: Operand, n: number): void {
    this.gpu.add(bufferRef(a), bufferRef(b), bufferRef(out), n);
  }

  dropout(x: Operand, out: Operand, n: number, p: number, seed: number): void {
    this.gpu.dropout(bufferRef(x), bufferRef(out), n, p, seed);
  }

  fill(x: Operand, n: number, value: number): void {
    this.gpu.fill(bufferRef(x), n, value, x.dtype === 'i32' ? 'i32' : 'f32');
  }

  scaleColumns(x: Operand, scale: Operand, out: Operand, rows: number, cols: number): void {
    this.gpu.scaleColumns(bufferRef(x), bufferRef(scale), bufferRef(out), rows, cols);
  }

  columnDots(a: Operand, b: Operand, out: Operand, rows: number, cols: number): void {
    this.gpu.columnDots(bufferRef(a), bufferRef(b), bufferRef(out), rows, cols);
  }

  sumRows(x: Operand, out: Operand, rows: number, cols: number): void {
    this.gpu.sumRows(bufferRef(x), bufferRef(out), rows, cols);
  }

  convert(src: Operand, dst: Operand, n: number): void {
    this.gpu.convert(
      bufferRef(src),
      floatDType(src.dtype, 'convert'),
      bufferRef(dst),
      floatDType(dst.dtype, 'convert'),
      n,
    );
  }

  gatherRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void {
    const elementBytes = DTYPE_BYTES[src.dtype] as 2 | 4;
    this.gpu.gatherRows(
      bufferRef(src),
      rowsInStorage(src, cols),
      bufferRef(idx),
      bufferRef(dst),
      rows,
      cols,
      elementBytes,
    );
  }

  scatterRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void {
    this.gpu.scatterRows(
      bufferRef(src),
      bufferRef(idx),
      bufferRef(dst),
      rowsInStorage(dst, cols),
      rows,
      cols,
    );
  }

  scatterAddRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void {
    this.gpu.scatterAddRows(
      bufferRef(src),
      bufferRef(idx),
      bufferRef(dst),
      rowsInStorage(dst, cols),
      rows,
      cols,
    );
  }

  ceOnlineChunk(
    logits: Operand,
    rows: number,
    cols: number,
    colOffset: number,
    targets: Operand,
    runMax: Operand,
    runSum: Operand,
    tgtLogit: Operand,
    acc: Operand | null,
    accCols: number,
  ): void {
    this.gpu.ceOnlineChunk(
      bufferRef(logits),
      rows,
      cols,
      colOffset,
      bufferRef(targets),
      bufferRef(runMax),
      bufferRef(runSum),
      bufferRef(tgtLogit),
      optionalRef(acc),
      accCols,
    );
  }

  ceOnlineFinish(
    acc: Operand,
    runSum: Operand,
    targetRows: Operand,
    rows: number,
    cols: number,
    scale: number,
  ): void {
    this.gpu.ceOnlineFinish(
      bufferRef(acc),
      bufferRef(runSum),
      bufferRef(targetRows),
      rows,
      cols,
      scale,
    );
  }

  ceChunkBackward(
    logits: Operand,
    rows: number,
    cols: number,
    colOffset: number,
    targets: Operand,
    lse: Operand,
    rowScale: Operand,
  ): void {
    this.gpu.ceChunkBackward(
      bufferRef(logits),
      rows,
      cols,
      colOffset,
      bufferRef(targets),
      bufferRef(lse),
      bufferRef(rowScale),
    );
  }

  ceLossFinish(
    runMax: Operand,
    runSum: Operand,
    tgtLogit: Operand,
    rows: number,
    lse: Operand,
    loss: Operand,
    divisor: number,
  ): void {
    this.gpu.ceLossFinish(
      bufferRef(runMax),
      bufferRef(runSum),
      bufferRef(tgtLogit),
      rows,
      bufferRef(lse),
      bufferRef(loss),
      divisor,
    );
  }

  scaleByScalar(x: Operand, n: number, factor: Operand, divisor: number): void {
    this.gpu.scaleByScalar(bufferRef(x), n, bufferRef(factor), divisor);
  }

  adamwStep(
    p: Operand,
    g: Operand,
    m: Operand,
    v: Operand,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void {
    this.gpu.adamwStep(
      bufferRef(p),
      bufferRef(g),
      bufferRef(m),
      bufferRef(v),
      n,
      lr,
      beta1,
      beta2,
      eps,
      weightDecay,
      bc1,
      bc2,
    );
  }

  async sumSquares(x: Operand, n: number): Promise<number> {
    const result = this.gpu.runner.scratchBuffer('sum-squares-result', 4);
    this.gpu.sumSquares(bufferRef(x), n, result);
    return new Float32Array(await this.gpu.read(result, 4))[0]!;
  }
}
