/**
 * The CPU backend: storage is a region of the shared wasm memory, GEMM runs on the worker pool,
 * the other heavy kernels are wasm SIMD (CpuKernels) and the light ones plain TypeScript.
 */
import type {
  AttentionDims,
  Backend,
  GateActivation,
  GemmOptions,
  Kernels,
  Operand,
  Storage,
} from '../backend.ts';
import { DTYPE_BYTES, type DType } from '../dtype.ts';
import * as host from './host-kernels.ts';
import { CpuKernels } from './kernels.ts';
import { WasmRuntime, type RuntimeOptions } from './runtime.ts';

interface CpuStorage extends Storage {
  readonly ptr: number;
}

function ptrOf(o: Operand): number {
  return (o.storage as CpuStorage).ptr + o.byteOffset;
}

function optionalPtr(o: Operand | null): number {
  return o ? ptrOf(o) : 0;
}

function matrixDType(dtype: DType): 'f32' | 'bf16' | 'f16' {
  if (dtype === 'i32') throw new Error('gemm on an i32 tensor');
  return dtype;
}

/**
 * The CPU backend: tensors in one shared WebAssembly.Memory, kernels in WebAssembly SIMD (threads
 * in Node, one thread in a page: pass `host: browserRuntimeHost(buildUrl)` there).
 */
export class CpuBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly kernels: Kernels;

  private constructor(readonly runtime: WasmRuntime) {
    this.kernels = new CpuKernelSet(runtime);
  }

  describe(): string {
    const simd = this.runtime.relaxed ? 'wasm relaxed SIMD' : 'wasm SIMD128';
    const threads = this.runtime.threads;
    return `cpu (${simd}, ${threads} thread${threads === 1 ? '' : 's'})`;
  }

  /** Compiles the kernels and starts the runtime (threads, host: see RuntimeOptions). */
  static async create(opts?: RuntimeOptions): Promise<CpuBackend> {
    return new CpuBackend(await WasmRuntime.create(opts));
  }

  /** A block of `bytes` bytes in the shared memory (contents undefined). */
  alloc(bytes: number): Storage {
    const storage: CpuStorage = { ptr: this.runtime.malloc(bytes), bytes };
    return storage;
  }

  /** Returns a block to the allocator. */
  free(storage: Storage): void {
    this.runtime.free((storage as CpuStorage).ptr);
  }

  /** Copies host bytes into a block. */
  upload(storage: Storage, byteOffset: number, data: ArrayBufferView): void {
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.runtime.u8((storage as CpuStorage).ptr + byteOffset, data.byteLength).set(src);
  }

  /** A copy of a block's bytes (ready at once on the CPU). */
  async download(storage: Storage, byteOffset: number, bytes: number): Promise<Uint8Array> {
    return this.readSync(storage, byteOffset, bytes);
  }

  readSync(storage: Storage, byteOffset: number, bytes: number): Uint8Array {
    return this.runtime.u8((storage as CpuStorage).ptr + byteOffset, bytes).slice();
  }

  hostView(storage: Storage, byteOffset: number, bytes: number): Uint8Array {
    return this.runtime.u8((storage as CpuStorage).ptr + byteOffset, bytes);
  }

  allocatedBytes(): number {
    return this.runtime.allocatedBytes;
  }

  /** Stops the runtime's threads; the backend must not be used afterwards. */
  dispose(): void {
    this.runtime.dispose();
  }
}

class CpuKernelSet implements Kernels {
  private readonly wasm: CpuKernels;

  constructor(private readonly rt: WasmRuntime) {
    this.wasm = new CpuKernels(rt);
  }

  private f32(o: Operand, n: number): Float32Array {
    return this.rt.f32(ptrOf(o), n);
  }
  private i32(o: Operand, n: number): Int32Array {
    return this.rt.i32(ptrOf(o), n);
  }

  gemm(a: Operand, b: Operand, c: Operand, o: GemmOptions): void {
    const { m, n, k } = o;
    this.rt.gemm({
      m,
      n,
      k,
      a: ptrOf(a),
      lda: o.lda ?? (o.transA ? m : k),
      transA: o.transA ?? false,
      aDtype: matrixDType(a.dtype),
      b: ptrOf(b),
      ldb: o.ldb ?? (o.transB ? k : n),
      transB: o.transB ?? false,
      bDtype: matrixDType(b.dtype),
      c: ptrOf(c),
      ldc: o.ldc ?? n,
      alpha: o.alpha ?? 1,
      beta: o.beta ?? 0,
      bias: o.bias ? ptrOf(o.bias) : undefined,
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
    this.wasm.attentionForward(
      ptrOf(q),
      ptrOf(k),
      ptrOf(v),
      ptrOf(out),
      ptrOf(lse),
      d.batch,
      d.queryLen,
      d.keyLen,
      d.kvCapacity,
      d.heads,
      d.kvHeads,
      d.headDim,
      optionalPtr(keyMask),
      optionalPtr(segmentIds),
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
    this.wasm.attentionBackward(
      ptrOf(q),
      ptrOf(k),
      ptrOf(v),
      ptrOf(out),
      ptrOf(lse),
      ptrOf(dout),
      ptrOf(dq),
      ptrOf(dk),
      ptrOf(dv),
      d.batch,
      d.queryLen,
      d.heads,
      d.kvHeads,
      d.headDim,
      optionalPtr(keyMask),
      optionalPtr(segmentIds),
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
    this.wasm.rmsnormForward(ptrOf(x), ptrOf(w), ptrOf(out), ptrOf(rstd), rows, dim, eps);
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
    this.wasm.rmsnormBackward(
      ptrOf(x),
      ptrOf(w),
      ptrOf(rstd),
      ptrOf(dout),
      ptrOf(dx),
      optionalPtr(dw),
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
    this.wasm.ropeApply(
      ptrOf(x),
      ptrOf(out),
      ptrOf(positions),
      batch,
      seq,
      heads,
      headDim,
      ptrOf(invFreq),
      inverse ? 1 : 0,
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
    this.wasm.gatedForward(activation, ptrOf(gate), ptrOf(up), ptrOf(out), n);
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
    this.wasm.gatedBackward(
      activation,
      ptrOf(gate),
      ptrOf(up),
      ptrOf(dout),
      ptrOf(dgate),
      ptrOf(dup),
      n,
    );
  }

  embeddingForward(table: Operand, ids: Operand, out: Operand, count: number, dim: number): void {
    const idArray = this.i32(ids, count);
    let maxId = 0;
    for (const id of idArray) maxId = Math.max(maxId, id);
    const tableView =
      table.dtype === 'f32'
        ? this.f32(table, (maxId + 1) * dim)
        : this.rt.u16(ptrOf(table), (maxId + 1) * dim);
    host.embeddingForward(
      tableView,
      table.dtype as 'f32' | host.HalfDType,
      idArray,
      this.f32(out, count * dim),
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
    const idArray = this.i32(ids, count);
    const maxId = idArray.reduce((a, b) => Math.max(a, b), 0);
    host.scatterAddRows(
      this.f32(dout, count * dim),
      idArray,
      this.f32(dTable, (maxId + 1) * dim),
      dim,
    );
  }

  axpby(x: Operand, y: Operand, n: number, alpha: number, beta: number): void {
    const xs = this.f32(x, n);
    const ys = this.f32(y, n);
    if (beta === 0) for (let i = 0; i < n; i++) ys[i] = alpha * xs[i]!;
    else for (let i = 0; i < n; i++) ys[i] = alpha * xs[i]! + beta * ys[i]!;
  }

  add(a: Operand, b: Operand, out: Operand, n: number): void {
    this.wasm.add(ptrOf(a), ptrOf(b), ptrOf(out), n);
  }

  dropout(x: Operand, out: Operand, n: number, p: number, seed: number): void {
    this.wasm.dropout(ptrOf(x), ptrOf(out), n, p, seed);
  }

  fill(x: Operand, n: number, value: number): void {
    if (x.dtype === 'i32') this.i32(x, n).fill(value);
    else this.f32(x, n).fill(value);
  }

  scaleColumns(x: Operand, scale: Operand, out: Operand, rows: number, cols: number): void {
    const n = rows * cols;
    host.scaleColumns(this.f32(x, n), this.f32(scale, cols), this.f32(out, n), rows, cols);
  }

  columnDots(a: Operand, b: Operand, out: Operand, rows: number, cols: number): void {
    const n = rows * cols;
    host.columnDots(this.f32(a, n), this.f32(b, n), this.f32(out, cols), rows, cols);
  }

  sumRows(x: Operand, out: Operand, rows: number, cols: number): void {
    host.sumRows(this.f32(x, rows * cols), this.f32(out, cols), rows, cols);
  }

  convert(src: Operand, dst: Operand, n: number): void {
    if (src.dtype === dst.dtype) {
      this.rt
        .u8(ptrOf(dst), n * DTYPE_BYTES[dst.dtype])
        .set(this.rt.u8(ptrOf(src), n * DTYPE_BYTES[src.dtype]));
    } else if (src.dtype === 'f32') {
      const out = this.rt.u16(ptrOf(dst), n);
      const from = this.f32(src, n);
      const toHalf = host.narrow(dst.dtype as host.HalfDType);
      for (let i = 0; i < n; i++) out[i] = toHalf(from[i]!);
    } else if (dst.dtype === 'f32') {
      const out = this.f32(dst, n);
      const from = this.rt.u16(ptrOf(src), n);
      const toF32 = host.widen(src.dtype as host.HalfDType);
      for (let i = 0; i < n; i++) out[i] = toF32(from[i]!);
    } else {
      throw new Error(`convert ${src.dtype} -> ${dst.dtype}`);
    }
  }

  gatherRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void {
    const bytes = cols * DTYPE_BYTES[src.dtype];
    const ids = this.i32(idx, rows);
    const from = ptrOf(src);
    const to = ptrOf(dst);
    const maxId = ids.reduce((a, b) => Math.max(a, b), 0);
    // One view spanning both regions, whichever comes first in memory.
    const mem = this.rt.u8(0, Math.max(to + rows * bytes, from + (maxId + 1) * bytes));
    for (let i = 0; i < rows; i++)
      mem.copyWithin(to + i * bytes, from + ids[i]! * bytes, from + (ids[i]! + 1) * bytes);
  }

  scatterRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void {
    const ids = this.i32(idx, rows);
    const out = ptrOf(dst);
    const from = this.f32(src, rows * cols);
    for (let i = 0; i < rows; i++)
      this.rt.f32(out + ids[i]! * cols * 4, cols).set(from.subarray(i * cols, (i + 1) * cols));
  }

  scatterAddRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void {
    const ids = this.i32(idx, rows);
    const maxId = ids.reduce((a, b) => Math.max(a, b), 0);
    host.scatterAddRows(this.f32(src, rows * cols), ids, this.f32(dst, (maxId + 1) * cols), cols);
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
    this.wasm.ceOnlineChunk(
      ptrOf(logits),
      rows,
      cols,
      colOffset,
      ptrOf(targets),
      ptrOf(runMax),
      ptrOf(runSum),
      ptrOf(tgtLogit),
      optionalPtr(acc),
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
    host.ceOnlineFinish(
      this.f32(acc, rows * cols),
      this.f32(runSum, rows),
      this.f32(targetRows, rows * cols),
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
    this.wasm.ceChunkBackward(
      ptrOf(logits),
      rows,
      cols,
      colOffset,
      ptrOf(targets),
      ptrOf(lse),
      ptrOf(rowScale),
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
    const maxes = this.f32(runMax, rows);
    const sums = this.f32(runSum, rows);
    const picked = this.f32(tgtLogit, rows);
    const lses = this.f32(lse, rows);
    // lse is rounded to f32 before it is summed (in float64), as the backward pass will see it.
    let total = 0;
    for (let r = 0; r < rows; r++) {
      lses[r] = maxes[r]! + Math.log(sums[r]!);
      total += lses[r]! - picked[r]!;
    }
    this.f32(loss, 1)[0] = total / divisor;
  }

  scaleByScalar(x: Operand, n: number, factor: Operand, divisor: number): void {
    const scale = this.f32(factor, 1)[0]! / divisor;
    const xs = this.f32(x, n);
    for (let i = 0; i < n; i++) xs[i] = xs[i]! * scale;
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
    this.wasm.adamwStep(
      ptrOf(p),
      ptrOf(g),
      ptrOf(m),
      ptrOf(v),
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
    return this.wasm.sumSquares(ptrOf(x), n);
  }
}
