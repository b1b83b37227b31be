/**
 * The contract between the engine's ops and a compute device. Ops only ever see `Storage`
 * handles and call named kernels; they never touch a device buffer's bytes, so the same model
 * code runs on the CPU (WebAssembly) and on WebGPU.
 */
import type { DType } from './dtype.ts';

/** An opaque device allocation. */
export interface Storage {
  readonly bytes: number;
}

/** A strided 2-D view of a tensor's storage handed to a kernel: element offset + row stride. */
export interface Operand {
  storage: Storage;
  /** Offset in bytes from the start of the storage. */
  byteOffset: number;
  dtype: DType;
}

/** Gate activation of a gated MLP: silu (Llama, Qwen) or the tanh approximation of GELU (Gemma). */
export type GateActivation = 'silu' | 'gelu_tanh';

export interface GemmOptions {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  /** Leading dimensions (row strides, in elements); default to the dense value. */
  lda?: number;
  ldb?: number;
  ldc?: number;
  alpha?: number;
  /** 0 overwrites C, 1 accumulates into it. */
  beta?: number;
  bias?: Operand;
}

export interface AttentionDims {
  batch: number;
  queryLen: number;
  keyLen: number;
  kvCapacity: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
  /**
   * Sliding window: the query at absolute position p sees keys j with p − window < j ≤ p
   * (0 or absent: every earlier key).
   */
  window?: number;
}

/**
 * Kernel entry points. Semantics are documented in docs/ARCHITECTURE.md ("Kernel signatures");
 * every backend must agree with src/engine/cpu/reference-kernels.ts.
 */
export interface Kernels {
  gemm(a: Operand, b: Operand, c: Operand, o: GemmOptions): void;
  attentionForward(
    q: Operand,
    k: Operand,
    v: Operand,
    out: Operand,
    lse: Operand,
    keyMask: Operand | null,
    segmentIds: Operand | null,
    d: AttentionDims,
  ): void;
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
  ): void;
  rmsnormForward(
    x: Operand,
    w: Operand,
    out: Operand,
    rstd: Operand,
    rows: number,
    dim: number,
    eps: number,
  ): void;
  rmsnormBackward(
    x: Operand,
    w: Operand,
    rstd: Operand,
    dout: Operand,
    dx: Operand,
    dw: Operand | null,
    rows: number,
    dim: number,
  ): void;
  /**
   * Rotate-half RoPE of x [batch, seq, heads, headDim] at positions i32 [batch·seq]: the first
   * `rotaryDim` (default headDim) values of each head turn in pairs (j, j + rotaryDim/2) by angle
   * f32(position · invFreq[j]), invFreq f32 [rotaryDim/2] (the model's table,
   * models/rope-frequencies.ts), with cos and sin multiplied by `scale` (default 1: LongRoPE's
   * attention factor); the other values are copied. `inverse` rotates by -angle (the backward).
   * out may be x.
   */
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
    rotaryDim?: number,
    scale?: number,
  ): void;
  /**
   * out = act(gate) · up: `silu` (SwiGLU) or `gelu_tanh` (Gemma's gate,
   * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))).
   */
  gatedForward(
    activation: GateActivation,
    gate: Operand,
    up: Operand,
    out: Operand,
    n: number,
  ): void;
  /** dgate = dout · up · act'(gate), dup = dout · act(gate) (overwritten; may alias gate / up). */
  gatedBackward(
    activation: GateActivation,
    gate: Operand,
    up: Operand,
    dout: Operand,
    dgate: Operand,
    dup: Operand,
    n: number,
  ): void;
  /** Gathers rows `ids` of table [vocab, dim] (any float dtype) into out [ids.length, dim] f32. */
  embeddingForward(table: Operand, ids: Operand, out: Operand, count: number, dim: number): void;
  /** dTable[ids[i]] += dout[i]. */
  embeddingBackward(dout: Operand, ids: Operand, dTable: Operand, count: number, dim: number): void;
  /** y = alpha * x + beta * y over n f32 elements. */
  axpby(x: Operand, y: Operand, n: number, alpha: number, beta: number): void;
  /** out = a + b over n f32 elements. */
  add(a: Operand, b: Operand, out: Operand, n: number): void;
  /**
   * LoRA dropout over n f32 elements: out = x / (1 - p), or 0 where the mask drawn from `seed`
   * drops the element (engine/dropout.ts); out may be x. The same seed redraws the same mask.
   */
  dropout(x: Operand, out: Operand, n: number, p: number, seed: number): void;
  fill(x: Operand, n: number, value: number): void;
  /** out[r, c] = x[r, c] · scale[c] over x [rows, cols] f32 (DoRA's per-output scale). */
  scaleColumns(x: Operand, scale: Operand, out: Operand, rows: number, cols: number): void;
  /** out[c] += Σ_r a[r, c] · b[r, c] over a, b [rows, cols] f32 (DoRA's magnitude gradient). */
  columnDots(a: Operand, b: Operand, out: Operand, rows: number, cols: number): void;
  /** Sums rows of x [rows, cols] into out [cols] (accumulating). */
  sumRows(x: Operand, out: Operand, rows: number, cols: number): void;
  /** Widens/narrows n elements between float dtypes. */
  convert(src: Operand, dst: Operand, n: number): void;
  /** Copies `rows` rows of `cols` elements: dst row i = src row idx[i] (idx i32), same dtype. */
  gatherRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void;
  /** Inverse of gatherRows: dst row idx[i] = src row i (f32). */
  scatterRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void;
  /** Inverse of gatherRows, accumulating: dst row idx[i] += src row i (f32). */
  scatterAddRows(src: Operand, idx: Operand, dst: Operand, rows: number, cols: number): void;
  /**
   * One vocabulary chunk of the fused LM-head loss: turns logits [rows, cols] into
   * exp(logit - newMax) in place while keeping per-row running max / sum, rescaling the
   * per-row accumulator acc [rows, accCols] when the max moves, and recording the target logit.
   */
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
  ): void;
  /** acc [rows, cols] = scale · (acc[r] / runSum[r] − targetRows[r]): the finished dLoss/dh. */
  ceOnlineFinish(
    acc: Operand,
    runSum: Operand,
    targetRows: Operand,
    rows: number,
    cols: number,
    scale: number,
  ): void;
  /** In place: logits [rows, cols] -> rowScale[r] * (exp(logit - lse[r]) - onehot(target)). */
  ceChunkBackward(
    logits: Operand,
    rows: number,
    cols: number,
    colOffset: number,
    targets: Operand,
    lse: Operand,
    rowScale: Operand,
  ): void;
  /**
   * Finishes the fused loss without a host read: lse[r] = runMax[r] + log(runSum[r]) and
   * loss[0] = Σ_r (lse[r] − tgtLogit[r]) / divisor.
   */
  ceLossFinish(
    runMax: Operand,
    runSum: Operand,
    tgtLogit: Operand,
    rows: number,
    lse: Operand,
    loss: Operand,
    divisor: number,
  ): void;
  /** x *= factor[0] / divisor over n f32 elements: applies a device-resident scalar (a backward seed). */
  scaleByScalar(x: Operand, n: number, factor: Operand, divisor: number): void;
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
  ): void;
  /** Sum of squares of n f32 elements, in float64. */
  sumSquares(x: Operand, n: number): Promise<number>;
}

export interface Backend {
  readonly name: 'cpu' | 'webgpu';
  /** What runs the kernels, for start-up lines: e.g. "cpu (wasm relaxed SIMD, 2 threads)". */
  describe(): string;
  alloc(bytes: number): Storage;
  free(storage: Storage): void;
  upload(storage: Storage, byteOffset: number, data: ArrayBufferView): void;
  download(storage: Storage, byteOffset: number, bytes: number): Promise<Uint8Array>;
  /** Synchronous read, only on backends whose memory the host can see (CPU). */
  readSync?(storage: Storage, byteOffset: number, bytes: number): Uint8Array;
  /** A live (no copy) view of device memory, on backends whose memory the host can see (CPU). */
  hostView?(storage: Storage, byteOffset: number, bytes: number): Uint8Array;
  readonly kernels: Kernels;
  /** Number of bytes currently allocated (for leak tests and memory reports). */
  allocatedBytes(): number;
  dispose(): void;
}
