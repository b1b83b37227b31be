/**
 * The native CPU runtime: one addon variant (its kernels and thread pool) and the native memory
 * blocks. It is a `KernelHost` (engine/cpu/launcher.ts), so the CPU kernel table runs on it
 * unchanged: `exports[name]` calls the addon's kernel of the wasm export's name with the same
 * arguments (addresses instead of wasm offsets), `parallelFor` splits it over the addon's pool.
 * It also offers WasmRuntime's malloc / free / views / gemm, which the GEMM tests use.
 */
import { availableParallelism } from 'node:os';
import { LoraforgeError } from '../../util/errors.ts';
import type { KernelHost } from '../cpu/launcher.ts';
import { checkGemmArgs, gemmKernelArgs, type GemmArgs } from '../cpu/runtime.ts';
import { loadNativeAddon, loadNativeVariant, type NativeAddon } from './addon.ts';
import { NativeMemory, type NativeBlock } from './memory.ts';

/**
 * How GEMM accumulates: `exact` (default) as float32 multiply-adds of the widened operands, as
 * the wasm backend; `bf16` lets bf16 × bf16 products use the CPU's bf16 dot-product instructions
 * (operands rounded to bf16 first, sums in float32).
 */
export type GemmPrecision = 'exact' | 'bf16';

export interface NativeRuntimeOptions {
  /** Threads including the calling one (default: all cores). */
  threads?: number;
  /** An ISA variant to load (default: the best this CPU runs, or LORAFORGE_NATIVE_ISA's). */
  variant?: string;
  gemmPrecision?: GemmPrecision;
}

type Kernel = (...args: number[]) => number;

/** Which runtime last sized each addon's pool (only it may stop the pool). */
const poolOwners = new WeakMap<NativeAddon, NativeRuntime>();

export class NativeRuntime implements KernelHost {
  readonly exports: Record<string, Kernel> = {};
  readonly memory: NativeMemory;
  private readonly ids = new Map<string, number>();
  /**
   * One argument list per kernel, refilled by each call: calls are synchronous (the pool is joined
   * before the addon returns), so a decoding step's hundreds of calls allocate none.
   */
  private readonly argLists = new Map<number, Float64Array>();
  private readonly gemmId: number;

  private constructor(
    private readonly addon: NativeAddon,
    /** The ISA variant the kernels were compiled for. */
    readonly variant: string,
    readonly threads: number,
    readonly gemmPrecision: GemmPrecision,
  ) {
    this.memory = new NativeMemory(addon);
    for (const name of addon.info().kernels) {
      const id = addon.kernelId(name);
      this.ids.set(name, id);
      this.argLists.set(id, new Float64Array(addon.kernelArity(id)));
      this.exports[name] = kernelFunction(addon, id, this.argLists.get(id)!);
    }
    this.gemmId = this.ids.get('gemm') ?? -1;
    // The probe does its work only in a variant that has the bf16 dot-product instruction.
    this.bf16Products = gemmPrecision === 'bf16' && (this.exports.bf16DotPeak?.(1, 0, 1) ?? 0) > 0;
  }

  /**
   * Whether GEMMs of bf16 weights run as bf16 products: asked for (`gemmPrecision` bf16) and
   * this variant has bf16 dot products; otherwise they are exact.
   */
  readonly bf16Products: boolean;

  /**
   * The runtime of `opts.variant`, or of the best variant (throws a LoraforgeError with the
   * reason when there is no native build; `loadNativeAddon` tells it without throwing).
   */
  static create(opts: NativeRuntimeOptions = {}): NativeRuntime {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1)
      throw new LoraforgeError(`threads must be a positive integer, got ${threads}`);
    let addon: NativeAddon;
    if (opts.variant) addon = loadNativeVariant(opts.variant);
    else {
      const load = loadNativeAddon();
      if (!load.addon) throw new LoraforgeError(`no native CPU backend: ${load.reason}`);
      addon = load.addon;
    }
    const runtime = new NativeRuntime(
      addon,
      addon.info().variant,
      addon.setThreads(threads),
      opts.gemmPrecision ?? 'exact',
    );
    poolOwners.set(addon, runtime);
    return runtime;
  }

  /** Calls kernel `name(...args, start, end)` over slices of [0, total) on the pool. */
  parallelFor(name: string, total: number, args: readonly number[]): void {
    const id = this.ids.get(name);
    if (id === undefined) throw new Error(`the native ${this.variant} build has no '${name}'`);
    const list = this.argLists.get(id)!;
    list.set(args);
    this.addon.parallelFor(id, total, list);
  }

  /** A new block (contents undefined). */
  allocBlock(bytes: number): NativeBlock {
    return this.memory.alloc(bytes);
  }

  /** WasmRuntime's malloc: a block's address. */
  malloc(bytes: number): number {
    return this.memory.alloc(bytes).address;
  }

  free(address: number): void {
    this.memory.free(address);
  }

  get allocatedBytes(): number {
    return this.memory.allocatedBytes;
  }

  f32(address: number, length: number): Float32Array {
    return this.memory.f32(address, length);
  }
  i32(address: number, length: number): Int32Array {
    return this.memory.i32(address, length);
  }
  u16(address: number, length: number): Uint16Array {
    return this.memory.u16(address, length);
  }
  u8(address: number, length: number): Uint8Array {
    return this.memory.u8(address, length);
  }

  /** C = alpha * op(A) * op(B) + beta * C (+ bias), on the pool (the kernel splits itself). */
  gemm(args: GemmArgs): void {
    checkGemmArgs(args);
    if (args.m === 0 || args.n === 0) return;
    if (this.gemmId < 0) throw new Error(`the native ${this.variant} build has no 'gemm'`);
    const list = this.argLists.get(this.gemmId)!;
    list.set(gemmKernelArgs(args));
    list[list.length - 1] = this.gemmPrecision === 'bf16' ? 1 : 0;
    this.addon.call(this.gemmId, list, 0, 1);
  }

  /**
   * Returns the cached free blocks and stops the pool's threads (when this runtime sized it
   * last); live blocks stay readable.
   */
  dispose(): void {
    this.memory.trim();
    if (poolOwners.get(this.addon) !== this) return;
    this.addon.setThreads(1);
    poolOwners.delete(this.addon);
  }
}

/**
 * Kernel `id` as a wasm export is called: `(...args, start, end)`; kernels without a range (the
 * wasm `sumSquares(x, n)`) are called with their arguments alone. `list` holds the arguments.
 */
function kernelFunction(addon: NativeAddon, id: number, list: Float64Array): Kernel {
  const arity = list.length;
  return (...args) => {
    for (let i = 0; i < arity; i++) list[i] = args[i]!;
    return addon.call(id, list, args[arity] ?? 0, args[arity + 1] ?? 0);
  };
}
