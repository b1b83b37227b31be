/**
 * The CPU backend: storage is a region of the shared wasm memory, GEMM runs on the worker pool,
 * the other heavy kernels are wasm SIMD (CpuLauncher) and the light ones plain TypeScript.
 */
import type { Backend, GemmOptions, Kernels, Operand, Storage } from '../backend.ts';
import type { DType } from '../dtype.ts';
import { bindKernels } from '../kernels/registry.ts';
import { CPU_KERNELS } from './kernel-table.ts';
import { CpuLauncher, type CpuArg } from './launcher.ts';
import { WasmRuntime, type GemmArgs, type KernelBuild, type RuntimeOptions } from './runtime.ts';

const KERNEL_BUILD_NAMES: Record<KernelBuild, string> = {
  simd128: 'wasm SIMD128',
  relaxed: 'wasm relaxed SIMD',
  wide: 'wasm relaxed SIMD, 256-bit revectorized GEMM',
};

/** A CPU block: `ptr` is its address in the kernels' memory (wasm offset or native address). */
export interface CpuStorage extends Storage {
  readonly ptr: number;
}

function ptrOf(o: Operand): number {
  return (o.storage as CpuStorage).ptr + o.byteOffset;
}

/** The generic adapter Operand → pointer of every registry kernel. */
export function cpuArg(o: Operand): CpuArg {
  return { ptr: ptrOf(o), dtype: o.dtype, bytes: o.storage.bytes - o.byteOffset };
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
    const registry = bindKernels(CPU_KERNELS, cpuArg, new CpuLauncher(runtime));
    this.kernels = Object.assign(new CpuGemm(runtime), registry);
  }

  describe(): string {
    const simd = KERNEL_BUILD_NAMES[this.runtime.kernels];
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

/** GEMM on a CPU runtime's pool; every other kernel comes from the registry (`bindKernels`). */
export class CpuGemm implements Pick<Kernels, 'gemm'> {
  constructor(private readonly rt: { gemm(args: GemmArgs): void }) {}

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
}
