/**
 * GPU storage buffers recycled by size class. Creating a GPUBuffer is expensive (and a training
 * step frees and re-requests the same activation sizes every step), so freed buffers wait in a
 * free list per class and the next request of that class reuses one: after a warm-up step no new
 * buffers are created.
 *
 * Classes are eighths of a power of two (at most 12.5% waste), never below MIN_BYTES; every class
 * is a multiple of 4 bytes (writeBuffer / copy granularity). Each buffer starts at offset 0, so
 * every allocation is aligned to `minStorageBufferOffsetAlignment`.
 */
const MIN_BYTES = 256;
/** Idle buffers beyond this are destroyed rather than kept. */
const DEFAULT_MAX_IDLE_BYTES = 512 << 20;

export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BYTES) return MIN_BYTES;
  const step = 2 ** Math.floor(Math.log2(bytes - 1)) / 8;
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  private readonly idle = new Map<number, GPUBuffer[]>();
  private idleBytes = 0;
  private live = 0;
  private peak = 0;
  private created = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Called before a buffer is destroyed, so that commands recorded against it are submitted. */
    private readonly beforeDestroy: () => void,
    private readonly maxIdleBytes = DEFAULT_MAX_IDLE_BYTES,
  ) {}

  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    if (size > this.device.limits.maxBufferSize) {
      throw new Error(
        `WebGPU: a ${bytes}-byte buffer exceeds the device limit of ${this.device.limits.maxBufferSize} bytes`,
      );
    }
    let buffer = this.idle.get(size)?.pop();
    if (buffer) {
      this.idleBytes -= size;
    } else {
      buffer = this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      this.created++;
    }
    this.live += size;
    this.peak = Math.max(this.peak, this.live + this.idleBytes);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    this.live -= buffer.size;
    if (this.idleBytes + buffer.size > this.maxIdleBytes) {
      this.beforeDestroy();
      buffer.destroy();
      return;
    }
    const list = this.idle.get(buffer.size) ?? [];
    list.push(buffer);
    this.idle.set(buffer.size, list);
    this.idleBytes += buffer.size;
  }

  /** Bytes of the buffers handed out and not yet released. */
  get liveBytes(): number {
    return this.live;
  }

  /** Device bytes the pool holds: handed out plus kept idle for reuse. */
  get heldBytes(): number {
    return this.live + this.idleBytes;
  }

  /** The most `heldBytes` has been (what a step needs of the device's memory, from the pool). */
  get peakHeldBytes(): number {
    return this.peak;
  }

  /** GPUBuffers created so far (constant across steps once the pool is warm). */
  get createdBuffers(): number {
    return this.created;
  }

  destroy(): void {
    for (const list of this.idle.values()) for (const buffer of list) buffer.destroy();
    this.idle.clear();
    this.idleBytes = 0;
  }
}
