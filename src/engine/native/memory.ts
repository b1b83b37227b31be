/**
 * Native memory as JavaScript sees it: every allocation is its own block (an ArrayBuffer over
 * addon memory, so no 4 GiB cap as in wasm32), kept sorted by address so that a view at any
 * address (a kernel's operand: block + byte offset) finds its block. A view never crosses a block.
 */
import { constants } from 'node:buffer';
import { LoraforgeError } from '../../util/errors.ts';
import type { NativeAddon } from './addon.ts';

/** One allocation: its address, the ArrayBuffer over it, and the bytes asked for. */
export interface NativeBlock {
  readonly address: number;
  readonly buffer: ArrayBuffer;
  readonly bytes: number;
}

export class NativeMemory {
  /** Live blocks in increasing address order. */
  private readonly blocks: NativeBlock[] = [];
  private allocated = 0;

  constructor(private readonly addon: NativeAddon) {}

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
    const buffer = this.addon.alloc(bytes);
    const block: NativeBlock = { address: this.addon.address(buffer), buffer, bytes };
    this.blocks.splice(this.indexAfter(block.address), 0, block);
    this.allocated += bytes;
    return block;
  }

  /** Returns the block starting at `address` to the system. */
  free(address: number): void {
    const index = this.indexAfter(address) - 1;
    const block = this.blocks[index];
    if (block?.address !== address) throw new Error(`free: no native block at ${address}`);
    this.blocks.splice(index, 1);
    this.allocated -= block.bytes;
    this.addon.free(address);
  }

  /** Bytes in live blocks. */
  get allocatedBytes(): number {
    return this.allocated;
  }

  /** The block holding [address, address + bytes). */
  blockAt(address: number, bytes: number): NativeBlock {
    const block = this.blocks[this.indexAfter(address) - 1];
    if (!block || address + bytes > block.address + block.bytes) {
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
