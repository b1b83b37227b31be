/**
 * How the CPU backends run kernels: the compiled kernels (the wasm exports of
 * src/engine/cpu/assembly/*.ts, or the native addon's kernels of the same names and arguments)
 * split over a thread pool through `parallelFor` when a call has enough work, on the calling
 * thread otherwise (a round trip to the workers would cost more). `CpuLauncher` is the context
 * every CPU kernel implementation (cpu/kernels/*.ts) receives, whichever `KernelHost` is below
 * it; `wasmKernel` is the one generic adapter from a registry spec to a compiled kernel: the
 * addresses of the spec's buffers in declaration order (0 for an absent one), then its params,
 * then the work range. Addresses are byte offsets into the shared wasm memory, or native
 * addresses (exact as numbers: below 2^53).
 */

import { DTYPE_BYTES, type DType } from '../dtype.ts';
import {
  paramNumbers,
  type AnySpec,
  type Implementation,
  type SpecParams,
} from '../kernels/spec.ts';

/** A buffer as CPU kernels see it: where it starts in memory, its dtype and extent. */
export interface CpuArg {
  ptr: number;
  dtype: DType;
  /** Bytes between `ptr` and the end of the operand's storage. */
  bytes: number;
}

/**
 * What runs the compiled kernels: structurally a `WasmRuntime` (the main-thread instance) or a
 * `NativeRuntime` (the addon), with views of its memory, plus the pool when there is one.
 */
export interface KernelHost {
  /** Kernels by name, called as `(...args, start, end)`. */
  exports: WebAssembly.Exports;
  /** Calls kernel `name(...args, start, end)` on the pool over slices of [0, total). */
  parallelFor?(name: string, total: number, args: number[]): void;
  /** Threads parallelFor spreads over (1 when absent). */
  readonly threads?: number;
  f32(ptr: number, length: number): Float32Array;
  i32(ptr: number, length: number): Int32Array;
  u16(ptr: number, length: number): Uint16Array;
  u8(ptr: number, length: number): Uint8Array;
}

/**
 * A spec run as its JS reference over views of the kernels' memory (each buffer viewed up to the
 * end of its storage, as its dtype): for kernels too light to be worth compiled code or the pool.
 */
export function hostKernel<S extends AnySpec>(spec: S): Implementation<S, CpuArg, CpuLauncher> {
  const buffers = Object.keys(spec.buffers);
  const run = (handles: Record<string, CpuArg | null>, params: SpecParams<S>, cpu: CpuLauncher) => {
    const views: Record<string, ArrayBufferView | null> = {};
    const dtypes: Record<string, DType> = {};
    for (const name of buffers) {
      const arg = handles[name] ?? null;
      views[name] = arg && cpu.view(arg);
      if (arg) dtypes[name] = arg.dtype;
    }
    return spec.reference(views as never, params, dtypes);
  };
  return run as Implementation<S, CpuArg, CpuLauncher>;
}

/** The CPU implementations of a family of specs (`F`: name → spec). */
export type CpuTable<F extends Record<string, AnySpec>> = {
  [K in keyof F]: Implementation<F[K], CpuArg, CpuLauncher>;
};

/**
 * A spec run by the compiled kernel `exportName` (a wasm export, or the native kernel of the
 * same name), whose arguments are the spec's buffers and params
 * in declaration order; `work` gives the items the export's [start, end) range covers and the
 * flops of one item (which decide whether the call is worth the pool).
 */
export function wasmKernel<S extends AnySpec>(
  spec: S,
  exportName: string,
  work: (params: SpecParams<S>) => [items: number, flopsPerItem: number],
): Implementation<S, CpuArg, CpuLauncher> {
  const buffers = Object.keys(spec.buffers);
  const run = (handles: Record<string, CpuArg | null>, params: SpecParams<S>, cpu: CpuLauncher) => {
    const [items, flopsPerItem] = work(params);
    const numbers = paramNumbers(spec, params);
    const args = new Array<number>(buffers.length + numbers.length);
    for (let i = 0; i < buffers.length; i++) args[i] = handles[buffers[i]!]?.ptr ?? 0;
    for (let i = 0; i < numbers.length; i++) args[buffers.length + i] = numbers[i]!;
    cpu.run(exportName, items, flopsPerItem, args);
  };
  return run as Implementation<S, CpuArg, CpuLauncher>;
}

export interface CpuLauncherOptions {
  /** Calls estimated below this many flops run on the calling thread (default 2^18). */
  minParallelFlops?: number;
}

type CompiledKernel = (...args: number[]) => number;

export class CpuLauncher {
  private readonly minParallelFlops: number;

  constructor(
    private readonly host: KernelHost,
    options: CpuLauncherOptions = {},
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
  /** The whole rest of an operand's storage, typed as its dtype. */
  view(arg: CpuArg): Float32Array | Int32Array | Uint16Array {
    const size = DTYPE_BYTES[arg.dtype];
    const length = Math.floor(arg.bytes / size);
    if (arg.dtype === 'f32') return this.f32(arg, length);
    return arg.dtype === 'i32' ? this.i32(arg, length) : this.u16(arg, length);
  }

  /** Whether calls may be split over worker threads. */
  get parallel(): boolean {
    return this.host.parallelFor !== undefined;
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

  kernel(name: string): CompiledKernel {
    const fn = this.host.exports[name];
    if (typeof fn !== 'function') throw new Error(`the CPU kernels have no '${name}'`);
    return fn as CompiledKernel;
  }
}
