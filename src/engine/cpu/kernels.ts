/**
 * How the CPU runs kernels: wasm exports (src/engine/cpu/assembly/*.ts) split over the worker
 * pool through `parallelFor` when a call has enough work, on the calling thread otherwise (a
 * round trip to the workers would cost more). `CpuKernels` is the context every CPU kernel
 * implementation (cpu/kernels/*.ts) receives; `wasmKernel` is the one generic adapter from a
 * registry spec to a wasm export: pointers of the spec's buffers in declaration order (0 for an
 * absent one), then its params, then the work range. Pointers are byte offsets into the shared
 * memory.
 */

import type { GateActivation } from '../backend.ts';
import type { DType } from '../dtype.ts';
import {
  paramNumbers,
  type AnySpec,
  type Implementation,
  type SpecParams,
} from '../kernels/spec.ts';

/** A buffer as CPU kernels see it: where it starts in the shared memory and its dtype. */
export interface CpuArg {
  ptr: number;
  dtype: DType;
}

/** Structurally a `WasmRuntime`: the main-thread instance and memory views, plus the pool when there is one. */
export interface KernelHost {
  exports: WebAssembly.Exports;
  /** Calls export `name(...args, start, end)` on workers over slices of [0, total). */
  parallelFor?(name: string, total: number, args: number[]): void;
  /** Threads parallelFor spreads over (1 when absent). */
  readonly threads?: number;
  f32(ptr: number, length: number): Float32Array;
  i32(ptr: number, length: number): Int32Array;
  u16(ptr: number, length: number): Uint16Array;
  u8(ptr: number, length: number): Uint8Array;
}

/** The CPU implementations of a family of specs (`F`: name → spec). */
export type CpuTable<F extends Record<string, AnySpec>> = {
  [K in keyof F]: Implementation<F[K], CpuArg, CpuKernels>;
};

/**
 * A spec run by the wasm export `exportName`, whose arguments are the spec's buffers and params
 * in declaration order; `work` gives the items the export's [start, end) range covers and the
 * flops of one item (which decide whether the call is worth the pool).
 */
export function wasmKernel<S extends AnySpec>(
  spec: S,
  exportName: string,
  work: (params: SpecParams<S>) => [items: number, flopsPerItem: number],
): Implementation<S, CpuArg, CpuKernels> {
  const buffers = Object.keys(spec.buffers);
  const run = (handles: Record<string, CpuArg | null>, params: SpecParams<S>, cpu: CpuKernels) => {
    const [items, flopsPerItem] = work(params);
    const pointers = buffers.map((name) => handles[name]?.ptr ?? 0);
    cpu.run(exportName, items, flopsPerItem, [...pointers, ...paramNumbers(spec, params)]);
  };
  return run as Implementation<S, CpuArg, CpuKernels>;
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

  get threads(): number {
    return this.host.threads ?? 1;
  }

  f32(arg: CpuArg, length: number): Float32Array {
    return this.host.f32(arg.ptr, length);
  }
  i32(arg: CpuArg, length: number): Int32Array {
    return this.host.i32(arg.ptr, length);
  }
  u16(arg: CpuArg, length: number): Uint16Array {
    return this.host.u16(arg.ptr, length);
  }
  u8(arg: CpuArg, length: number): Uint8Array {
    return this.host.u8(arg.ptr, length);
  }

  /** Runs `name(...args, start, end)` over [0, total) items of about `flopsPerItem` each. */
  run(name: string, total: number, flopsPerItem: number, args: number[]): void {
    if (total <= 0) return;
    const { parallelFor } = this.host;
    if (parallelFor && total > 1 && total * flopsPerItem >= this.minParallelFlops) {
      parallelFor.call(this.host, name, total, args);
    } else {
      this.kernel(name)(...args, 0, total);
    }
  }

  kernel(name: string): WasmKernel {
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
   * be x. Pair j turns by position · invFreq[j] from the f32 table `invFreq` [D/2].
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
}
