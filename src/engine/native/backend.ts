/**
 * The native CPU backend: tensors in native memory blocks (one per storage, no 4 GiB cap), the
 * CPU kernel table (cpu/kernel-table.ts) run unchanged on the addon's kernels through a
 * CpuLauncher, GEMM by the addon's `gemm`. It is a CPU backend (`name` 'cpu'): its memory is host
 * memory, readable synchronously and through live views, as the wasm backend's.
 */
import type { Backend, Kernels, Storage } from '../backend.ts';
import { cpuArg, CpuGemm, type CpuStorage } from '../cpu/backend.ts';
import { CPU_KERNELS } from '../cpu/kernel-table.ts';
import { CpuLauncher, wasmKernel } from '../cpu/launcher.ts';
import { ATTENTION } from '../kernels/attention.ts';
import { bindKernels } from '../kernels/registry.ts';
import { VECTOR_OPS } from '../kernels/vector-ops.ts';
import { NativeRuntime, type NativeRuntimeOptions } from './runtime.ts';

/**
 * The CPU kernel table, with the kernels that are JavaScript loops on the wasm backend run by the
 * addon instead (on the pool): axpby, which copies and accumulates gradients. The addon's attention
 * forward takes the query heads that share a kv head together (native/src/kernels/attention.cc):
 * a work item is one query position of one kv head.
 */
export const NATIVE_KERNELS: typeof CPU_KERNELS = {
  ...CPU_KERNELS,
  axpby: wasmKernel(VECTOR_OPS.axpby, 'axpby', ({ n }) => [n, 3]),
  attentionForward: wasmKernel(ATTENTION.attentionForward, 'attentionForward', (p) => [
    p.B * p.KVH * p.Tq,
    (2 * p.H * p.Tk * p.D) / p.KVH,
  ]),
};

/**
 * Calls below this many flops run on the calling thread. Four times the wasm launcher's threshold:
 * native kernels do about twice the flops per second, so a pool round trip pays off later. Measured
 * on decoding (Qwen2-0.5B shape, 2 threads, load ~3.5): attention over ~150 cached keys 55-57 µs
 * per call on one thread vs 86-105 µs on two.
 */
const NATIVE_MIN_PARALLEL_FLOPS = 1 << 20;

interface NativeStorage extends CpuStorage {
  readonly buffer: ArrayBuffer;
}

export class NativeBackend implements Backend {
  readonly name = 'cpu' as const;
  readonly kernels: Kernels;

  private constructor(readonly runtime: NativeRuntime) {
    const launcher = new CpuLauncher(runtime, { minParallelFlops: NATIVE_MIN_PARALLEL_FLOPS });
    const registry = bindKernels(NATIVE_KERNELS, cpuArg, launcher);
    this.kernels = Object.assign(new CpuGemm(runtime), registry);
  }

  /** Loads the addon (see NativeRuntimeOptions) and sizes its pool. */
  static create(opts?: NativeRuntimeOptions): NativeBackend {
    return new NativeBackend(NativeRuntime.create(opts));
  }

  describe(): string {
    const { variant, threads, gemmPrecision, bf16Products } = this.runtime;
    const precision = bf16Products
      ? ', bf16 products'
      : gemmPrecision === 'bf16'
        ? ', exact products (this CPU has no bf16 dot products)'
        : '';
    return `cpu (native ${variant}, ${threads} thread${threads === 1 ? '' : 's'}${precision})`;
  }

  alloc(bytes: number): Storage {
    const block = this.runtime.allocBlock(bytes);
    const storage: NativeStorage = { ptr: block.address, bytes, buffer: block.buffer };
    return storage;
  }

  free(storage: Storage): void {
    this.runtime.free((storage as NativeStorage).ptr);
  }

  upload(storage: Storage, byteOffset: number, data: ArrayBufferView): void {
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.hostView(storage, byteOffset, data.byteLength).set(src);
  }

  async download(storage: Storage, byteOffset: number, bytes: number): Promise<Uint8Array> {
    return this.readSync(storage, byteOffset, bytes);
  }

  readSync(storage: Storage, byteOffset: number, bytes: number): Uint8Array {
    return this.hostView(storage, byteOffset, bytes).slice();
  }

  hostView(storage: Storage, byteOffset: number, bytes: number): Uint8Array {
    return new Uint8Array((storage as NativeStorage).buffer, byteOffset, bytes);
  }

  allocatedBytes(): number {
    return this.runtime.allocatedBytes;
  }

  /** Stops the addon's threads; the backend must not be used afterwards. */
  dispose(): void {
    this.runtime.dispose();
  }
}
