/**
 * Native memory as JavaScript sees it: every allocation is its own block (an ArrayBuffer over
 * addon memory, so no 4 GiB cap as in wasm32), kept sorted by address so that a view at any
 * address (a kernel's operand: block + byte offset) finds its block. A view never crosses a block.
 * Cached blocks (below) stay in that list until they go back to the system: decoding allocates and
 * frees a few hundred tensors per token, and taking each out and putting it back shifted the
 * list's hundreds of entries every time.
 *
 * Freed blocks are kept for reuse by size class (sizes rounded up by at most 1/8), up to a cap,
 * oldest returned to the system first: a training step frees and asks again for the same sizes
 * every step, and handing each back to malloc cost page faults on every reuse and left the
 * allocator's heap fragmented (2.3x the wasm backend's peak RSS on bench:train).
 */
import { constants } from 'node:buffer';
import { LoraforgeError } from '../../util/errors.ts';
import type { NativeAddon } from './addon.ts';

/** One allocation: its address, the ArrayBuffer over it, and its size (the size class). */
export interface NativeBlock {
  readonly address: number;
  readonly buffer: ArrayBuffer;
  readonly bytes: number;
}

/** Bytes of freed blocks kept for reuse by default. */
const DEFAULT_CACHE_BYTES = 2 ** 30;

/** The size a request is served with: 64-byte steps up to 4 KiB, then 8 steps per doubling. */
export function sizeClass(bytes: number): number {
  if (bytes <= 4096) return Math.max(64, Math.ceil(bytes / 64) * 64);
  const step = 2 ** Math.floor(Math.log2(bytes)) / 8;
  return Math.ceil(bytes / step) * step;
}

export class NativeMemory {
  /** Blocks held from the system (live and cached) in increasing address order. */
  private readonly blocks: NativeBlock[] = [];
  private allocated = 0;
  /** Freed blocks by size class, and all of them oldest first (a Set keeps insertion order). */
  private readonly cache = new Map<number, NativeBlock[]>();
  private readonly cacheOrder = new Set<NativeBlock>();
  private cached = 0;

  constructor(
    private readonly addon: NativeAddon,
    /** At most this many bytes of freed blocks are kept for reuse. */
    private readonly cacheLimit = DEFAULT_CACHE_BYTES,
  ) {}

  /** A new block of `bytes` bytes (contents undefined), 64-byte aligned. */
  alloc(bytes: number): NativeBlock {
    if (!Number.isInteger(bytes) || bytes < 0)
      throw new RangeError(`alloc: bytes must be a non-negative integer, got ${bytes}`);
    // One tensor is one ArrayBuffer: the total is unbounded, a single one is the engine's limit.
    if (bytes > constants.MAX_LENGTH) {
      throw new LoraforgeError(
        `one tensor of ${(bytes / 2 ** 30).toFixed(2)} GiB is above this Node's ArrayBuffer limit (${(constants.MAX_LENGTH / 2 ** 30).toFixed(0)} GiB)`,
        'Node 22 and later allow larger ones',
      );
    }
    const size = sizeClass(bytes);
    const reused = this.cache.get(size)?.pop();
    if (reused) {
      this.cacheOrder.delete(reused);
      this.cached -= size;
    }
    const block = reused ?? this.newBlock(size);
    this.allocated += size;
    return block;
  }

  /** Takes the block starting at `address` back (kept for reuse, or returned to the system). */
  free(address: number): void {
    const block = this.blocks[this.indexAfter(address) - 1];
    if (block?.address !== address || this.cacheOrder.has(block)) {
      throw new Error(`free: no native block at ${address}`);
    }
    this.allocated -= block.bytes;
    if (block.bytes > this.cacheLimit) {
      this.returnToSystem(block);
      return;
    }
    const list = this.cache.get(block.bytes);
    if (list) list.push(block);
    else this.cache.set(block.bytes, [block]);
    this.cacheOrder.add(block);
    this.cached += block.bytes;
    while (this.cached > this.cacheLimit) this.release(this.oldestCached());
  }

  /** Returns every cached block to the system. */
  trim(): void {
    while (this.cacheOrder.size > 0) this.release(this.oldestCached());
  }

  /** Bytes in live blocks (their size classes). */
  get allocatedBytes(): number {
    return this.allocated;
  }

  /** Bytes of freed blocks kept for reuse. */
  get cachedBytes(): number {
    return this.cached;
  }

  private newBlock(size: number): NativeBlock {
    const buffer = this.addon.alloc(size);
    const block = { address: this.addon.address(buffer), buffer, bytes: size };
    this.blocks.splice(this.indexAfter(block.address), 0, block);
    return block;
  }

  private returnToSystem(block: NativeBlock): void {
    this.blocks.splice(this.indexAfter(block.address) - 1, 1);
    this.addon.free(block.address);
  }

  private oldestCached(): NativeBlock {
    return this.cacheOrder.values().next().value!;
  }

  /** A cached block back to the system. */
  private release(block: NativeBlock): void {
    this.cacheOrder.delete(block);
    const list = this.cache.get(block.bytes)!;
    list.splice(list.indexOf(block), 1);
    if (list.length === 0) this.cache.delete(block.bytes);
    this.cached -= block.bytes;
    this.returnToSystem(block);
  }

  /** The live block holding [address, address + bytes). */
  blockAt(address: number, bytes: number): NativeBlock {
    const block = this.blocks[this.indexAfter(address) - 1];
    if (!block || address + bytes > block.address + block.bytes || this.cacheOrder.has(block)) {
      throw new RangeError(`native memory: no block holds ${bytes} bytes at ${address}`);
    }
    return block;
  }

  f32(address: number, length: number): Float32Array {
    const block = this.blockAt(address, length * 4);
    return new Float32Array(block.buffer, address - block.address, length);
  }
  i32(address: number, length: number): Int32Array {
    const block = this.blockAt(address, length * 4);
    return new Int32Array(block.buffer, address - block.address, length);
  }
  u16(address: number, length: number): Uint16Array {
    const block = this.blockAt(address, length * 2);
    return new Uint16Array(block.buffer, address - block.address, length);
  }
  u8(address: number, length: number): Uint8Array {
    const block = this.blockAt(address, length);
    return new Uint8Array(block.buffer, address - block.address, length);
  }

  /** The number of blocks whose address is at most `address` (binary search). */
  private indexAfter(address: number): number {
    let lo = 0;
    let hi = this.blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.blocks[mid]!.address <= address) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
