/**
 * `CpuKernels`: typed entry points to the non-GEMM wasm kernels (src/engine/cpu/assembly/kernels.ts),
 * with the argument lists of docs/ARCHITECTURE.md "Kernel signatures". Pointers are byte offsets
 * into the shared memory; 0 means "absent" where a buffer is optional. Kernels with enough work
 * are split over the worker pool through `parallelFor`; small calls stay on the calling thread,
 * where a round trip to the workers would cost more than the work.
 */

import type { GateActivation } from '../backend.ts';
import { dropoutKeepScale, dropoutThreshold } from '../dropout.ts';

/** Structurally a `WasmRuntime`: the main-thread instance, plus the pool when there is one. */
export interface KernelHost {
  exports: WebAssembly.Exports;
  /** Calls export `name(...args, start, end)` on workers over slices of [0, total). */
  parallelFor?(name: string, total: number, args: number[]): void;
  /** Threads parallelFor spreads over (1 when absent). */
  readonly threads?: number;
}

export interface CpuKernelsOptions {
  /** Calls estimated below this many flops run on the calling thread (default 2^18). */
  minParallelFlops?: number;
}

type WasmKernel = (...args: number[]) => number;

/** Time of the split attention backward relative to the fused one on the same threads (measured). */
const SPLIT_BACKWARD_COST = 1.8;

/** The wasm exports (forward, backward) of each gate activation. */
const GATE_KERNELS: Record<GateActivation, [string, string]> = {
  silu: ['swigluForward', 'swigluBackward'],
  gelu_tanh: ['geluTanhGateForward', 'geluTanhGateBackward'],
};

export class CpuKernels {
  private readonly minParallelFlops: number;

  constructor(
    private readonly host: KernelHost,
    options: CpuKernelsOptions = {},
  ) {
    this.minParallelFlops = options.minParallelFlops ?? 1 << 18;
  }

  /** Runs `name(...args, start, end)` over [0, total) items of about `flopsPerItem` each. */
  private run(name: string, total: number, flopsPerItem: number, args: number[]): void {
    if (total <= 0) return;
    const { parallelFor } = this.host;
    if (parallelFor && total > 1 && total * flopsPerItem >= this.minParallelFlops) {
      parallelFor.call(this.host, name, total, args);
    } else {
      this.kernel(name)(...args, 0, total);
    }
  }

  private kernel(name: string): WasmKernel {
    const fn = this.host.exports[name];
    if (typeof fn !== 'function') throw new Error(`wasm module has no kernel export '${name}'`);
    return fn as WasmKernel;
  }

  /**
   * Causal GQA attention. q/out [B,Tq,H,D]; k/v [B,kvCap,KVH,D] (first Tk rows valid); query i
   * at position Tk-Tq+i; lse [B,H,Tq] (+Infinity for a query that sees no key; its output is 0).
   * keyMask / segIds: i32 [B,kvCap] or 0. `window` > 0: a query sees itself and the window − 1
   * keys before it.
   */
  attentionForward(
    q: number,
    k: number,
    v: number,
    out: number,
    lse: number,
    B: number,
    Tq: number,
    Tk: number,
    kvCap: number,
    H: number,
    KVH: number,
    D: number,
    keyMask: number,
    segIds: number,
    scale: number,
    window = 0,
  ): void {
    const args = [q, k, v, out, lse, B, Tq, Tk, kvCap, H, KVH, D, keyMask, segIds, scale, window];
    this.run('attentionForward', B * H, 2 * Tq * Tk * D, args);
  }

  /**
   * Flash backward (Tq = Tk = kvCap = T); dq, dk, dv overwritten, GQA heads summed into dk / dv.
   * When there are too few (batch, kv head) pairs to keep the threads busy, the work is split
   * differently: dq per query head, dk / dv per block of keys (more arithmetic, all threads busy).
   */
  attentionBackward(
    q: number,
    k: number,
    v: number,
    out: number,
    lse: number,
    dout: number,
    dq: number,
    dk: number,
    dv: number,
    B: number,
    T: number,
    H: number,
    KVH: number,
    D: number,
    keyMask: number,
    segIds: number,
    scale: number,
    window = 0,
  ): void {
    const threads = this.host.threads ?? 1;
    // Per query head: 2 dots + 3 axpys of length D (2 flops each) per visible pair, ~T^2/2 pairs.
    const pairFlops = 5 * T * T * D;
    const fusedRounds = Math.ceil((B * KVH) / threads);
    const dims = [B, T, H, KVH, D, keyMask, segIds, scale, window];
    if (!this.host.parallelFor || (SPLIT_BACKWARD_COST * B * KVH) / threads >= fusedRounds) {
      this.run('attentionBackward', B * KVH, (H / KVH) * pairFlops, [
        q,
        k,
        v,
        out,
        lse,
        dout,
        dq,
        dk,
        dv,
        ...dims,
      ]);
      return;
    }
    this.run('attentionBackwardQuery', B * H, pairFlops, [q, k, v, out, lse, dout, dq, ...dims]);
    // Enough key blocks for about four work items per thread.
    const keyBlock = Math.max(8, Math.ceil((B * KVH * T) / (4 * threads)));
    const items = B * KVH * Math.ceil(T / keyBlock);
    const kvArgs = [q, k, v, out, lse, dout, dk, dv, ...dims, keyBlock];
    this.run('attentionBackwardKeyValue', items, ((H / KVH) * pairFlops * B * KVH) / items, kvArgs);
  }

  /** out = x * rstd * w per row; rstd [rows] saved unless 0. */
  rmsnormForward(
    x: number,
    w: number,
    out: number,
    rstd: number,
    rows: number,
    dim: number,
    eps: number,
  ): void {
    this.run('rmsnormForward', rows, 3 * dim, [x, w, out, rstd, rows, dim, eps]);
  }

  /** dx overwritten; dw (unless 0) accumulated in a second, column-parallel pass so jobs never share it. */
  rmsnormBackward(
    x: number,
    w: number,
    rstd: number,
    dout: number,
    dx: number,
    dw: number,
    rows: number,
    dim: number,
  ): void {
    this.run('rmsnormBackwardInput', rows, 6 * dim, [x, w, rstd, dout, dx, rows, dim]);
    if (dw !== 0) this.run('rmsnormBackwardWeight', dim, 3 * rows, [x, rstd, dout, dw, rows, dim]);
  }

  /**
   * Rotate-half RoPE of x [B,T,heads,D] at positions i32 [B,T]; inverse=1 is the backward; out may
   * be x. The first `rotaryDim` values of each head turn, pair j by position · invFreq[j] from the
   * f32 table `invFreq` [rotaryDim/2], with cos/sin times `scale`; the rest are copied.
   */
  ropeApply(
    x: number,
    out: number,
    positions: number,
    B: number,
    T: number,
    heads: number,
    D: number,
    invFreq: number,
    inverse: number,
    rotaryDim = D,
    scale = 1,
  ): void {
    this.run('ropeApply', B * T, 3 * heads * D + 100 * D, [
      x,
      out,
      positions,
      B,
      T,
      heads,
      D,
      invFreq,
      inverse,
      rotaryDim,
      scale,
    ]);
  }

  /** out = act(gate) * up (act: silu or gelu_tanh). */
  gatedForward(activation: GateActivation, gate: number, up: number, out: number, n: number): void {
    this.run(GATE_KERNELS[activation][0], n, 20, [gate, up, out, n]);
  }

  /** dgate = dout * up * act'(gate), dup = dout * act(gate); dgate / dup may be gate / up. */
  gatedBackward(
    activation: GateActivation,
    gate: number,
    up: number,
    dout: number,
    dgate: number,
    dup: number,
    n: number,
  ): void {
    this.run(GATE_KERNELS[activation][1], n, 25, [gate, up, dout, dgate, dup, n]);
  }

  /** out = silu(gate) * up. */
  swigluForward(gate: number, up: number, out: number, n: number): void {
    this.gatedForward('silu', gate, up, out, n);
  }

  /** dgate = dout * up * silu'(gate), dup = dout * silu(gate); dgate / dup may be gate / up. */
  swigluBackward(
    gate: number,
    up: number,
    dout: number,
    dgate: number,
    dup: number,
    n: number,
  ): void {
    this.gatedBackward('silu', gate, up, dout, dgate, dup, n);
  }

  /**
   * Online log-sum-exp over a vocab chunk [rows, cols] (ids colOffset..): runMax / runSum f32
   * [rows] (start at -Infinity / 0; lse = runMax + log(runSum) after the last chunk); tgtLogit[r]
   * is set when targets[r] (i32) falls in the chunk.
   */
  ceChunkForward(
    logits: number,
    rows: number,
    cols: number,
    colOffset: number,
    targets: number,
    runMax: number,
    runSum: number,
    tgtLogit: number,
  ): void {
    this.run('ceChunkForward', rows, 20 * cols, [
      logits,
      rows,
      cols,
      colOffset,
      targets,
      runMax,
      runSum,
      tgtLogit,
    ]);
  }

  /** Online-softmax chunk of the fused LM-head loss (see the wasm kernel); acc = 0 skips it. */
  ceOnlineChunk(
    logits: number,
    rows: number,
    cols: number,
    colOffset: number,
    targets: number,
    runMax: number,
    runSum: number,
    tgtLogit: number,
    acc: number,
    accCols: number,
  ): void {
    const args = [logits, rows, cols, colOffset, targets, runMax, runSum, tgtLogit, acc, accCols];
    this.run('ceOnlineChunk', rows, 20 * cols + accCols, args);
  }

  /**
   * In place: logits -> rowScale[r] * (softmax - onehot(targets[r])), given the rows' lse f32
   * [rows]. rowScale is f32 [rows] (e.g. 1/numTargets, 0 for unsupervised rows, which become 0).
   */
  ceChunkBackward(
    logits: number,
    rows: number,
    cols: number,
    colOffset: number,
    targets: number,
    lse: number,
    rowScale: number,
  ): void {
    this.run('ceChunkBackward', rows, 20 * cols, [
      logits,
      rows,
      cols,
      colOffset,
      targets,
      lse,
      rowScale,
    ]);
  }

  /** PyTorch AdamW step over n parameters; bc1 = 1 - beta1^t, bc2 = 1 - beta2^t. */
  adamwStep(
    p: number,
    g: number,
    m: number,
    v: number,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    bc1: number,
    bc2: number,
  ): void {
    this.run('adamwStep', n, 15, [p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2]);
  }

  /** out = a + b (out may be a or b). */
  add(a: number, b: number, out: number, n: number): void {
    this.run('add', n, 2, [a, b, out, n]);
  }

  /** LoRA dropout of n floats under `seed` (reference-kernels.ts `dropout`); out may be x. */
  dropout(x: number, out: number, n: number, p: number, seed: number): void {
    const args = [x, out, n, dropoutThreshold(p), dropoutKeepScale(p), seed >>> 0];
    this.run('dropoutApply', n, 12, args);
  }

  /** y += alpha * x. */
  axpy(alpha: number, x: number, y: number, n: number): void {
    this.run('axpy', n, 3, [alpha, x, y, n]);
  }

  /** out = alpha * x (out may be x). */
  scale(x: number, alpha: number, out: number, n: number): void {
    this.run('scale', n, 2, [x, alpha, out, n]);
  }

  /** Sum of squares of n floats, accumulated in f64 (calling thread). */
  sumSquares(x: number, n: number): number {
    return this.kernel('sumSquares')(x, n);
  }

  /** Row-wise softmax of [rows, cols] (out may be x). */
  softmaxRows(x: number, out: number, rows: number, cols: number): void {
    this.run('softmaxRows', rows, 25 * cols, [x, out, rows, cols]);
  }

  /** bf16 bits (u16) -> f32. */
  bf16ToF32(src: number, dst: number, n: number): void {
    this.run('bf16ToF32', n, 2, [src, dst, n]);
  }

  /** f32 -> bf16 bits (u16), round to nearest even. */
  f32ToBf16(src: number, dst: number, n: number): void {
    this.run('f32ToBf16', n, 4, [src, dst, n]);
  }
}
