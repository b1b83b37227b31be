/**
 * The WebGPU backend: storage is a pooled GPUBuffer (buffer-pool.ts), kernels are recorded into
 * one command stream by `WebGpuKernels` and submitted when the host needs results (an upload or a
 * download), so a forward + backward pass runs without the host waiting on the GPU.
 *
 * Device memory is not visible to the host: there is no readSync / hostView, and reads are async.
 */
import type { Backend, Kernels, Storage } from '../backend.ts';
import { bindKernels } from '../kernels/registry.ts';
import { gpuArg, WebGpuGemm, type GpuStorage } from './backend-kernels.ts';
import { WEBGPU_KERNELS } from './kernel-table.ts';
import { BufferPool } from './buffer-pool.ts';
import { WebGpuKernels, type WebGpuKernelsOptions } from './kernels.ts';

/** writeBuffer and buffer copies work in whole 4-byte words. */
const WORD = 4;

/** The WebGPU compute backend (navigator.gpu in a browser, Dawn in Node). */
export class WebGpuBackend implements Backend {
  readonly name = 'webgpu' as const;
  readonly kernels: Kernels;
  private readonly pool: BufferPool;

  constructor(readonly gpu: WebGpuKernels) {
    const registry = bindKernels(WEBGPU_KERNELS, gpuArg, gpu.runner);
    this.kernels = Object.assign(new WebGpuGemm(gpu), registry);
    this.pool = new BufferPool(gpu.device, () => gpu.flush());
  }

  describe(): string {
    const { description, vendor, device } = this.gpu.context.adapterInfo;
    return `webgpu (${description || [vendor, device].filter(Boolean).join(' ') || 'unnamed adapter'})`;
  }

  /** Acquires a WebGPU adapter and device and picks its GEMM kernels (tuner.ts). */
  static async create(options?: WebGpuKernelsOptions): Promise<WebGpuBackend> {
    return new WebGpuBackend(await WebGpuKernels.create(options));
  }

  /** A GPU buffer of `bytes` bytes. */
  alloc(bytes: number): Storage {
    const storage: GpuStorage = { buffer: this.pool.acquire(bytes), bytes };
    return storage;
  }

  /** Releases a buffer from `alloc`. */
  free(storage: Storage): void {
    this.pool.release((storage as GpuStorage).buffer);
  }

  /**
   * Tensors are uploaded whole from their first byte, so only a half tensor with an odd element
   * count ends mid-word; its last word is completed with zero bytes, which fall into the padding
   * that every pooled buffer has up to its 4-byte size class.
   */
  upload(storage: Storage, byteOffset: number, data: ArrayBufferView): void {
    if (byteOffset % WORD !== 0) {
      throw new Error(
        `WebGPU upload at byte ${byteOffset}: uploads must start on a 4-byte boundary`,
      );
    }
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength % WORD !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / WORD) * WORD);
      padded.set(bytes);
      bytes = padded;
    }
    this.gpu.write({ buffer: (storage as GpuStorage).buffer, offset: byteOffset }, bytes);
  }

  /** Reads whole words around the requested range and cuts it out. */
  async download(storage: Storage, byteOffset: number, bytes: number): Promise<Uint8Array> {
    if (bytes === 0) return new Uint8Array(0);
    const start = Math.floor(byteOffset / WORD) * WORD;
    const end = Math.ceil((byteOffset + bytes) / WORD) * WORD;
    const words = await this.gpu.read(
      { buffer: (storage as GpuStorage).buffer, offset: start },
      end - start,
    );
    return new Uint8Array(words, byteOffset - start, bytes);
  }

  allocatedBytes(): number {
    return this.pool.liveBytes;
  }

  /** Device bytes held by the buffer pool now, and at most so far (live + idle, in size classes). */
  get deviceMemory(): { heldBytes: number; peakHeldBytes: number } {
    return { heldBytes: this.pool.heldBytes, peakHeldBytes: this.pool.peakHeldBytes };
  }

  /** GPUBuffers created so far: stops growing once every size a step needs is pooled. */
  get createdBuffers(): number {
    return this.pool.createdBuffers;
  }

  /** Releases the device. */
  dispose(): void {
    this.gpu.flush();
    this.pool.destroy();
    this.gpu.destroy();
  }
}
