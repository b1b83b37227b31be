/**
 * First-fit free-list allocator over a growable byte range (the shared wasm memory). It only does
 * bookkeeping: addresses are plain numbers, and `grow` is asked to extend the range when no free
 * block fits. Blocks are 64-byte aligned (a cache line, enough for any SIMD access).
 */

export const ALIGNMENT = 64;

interface FreeBlock {
  start: number;
  size: number;
}

export class FreeListAllocator {
  /** Free blocks sorted by address, never adjacent (adjacent ones are merged). */
  private readonly freeBlocks: FreeBlock[] = [];
  private readonly allocated = new Map<number, number>();
  private end: number;

  /**
   * @param start first usable address (rounded up to the alignment)
   * @param end current end of the range
   * @param grow extends the range to at least `minEnd` and returns the new end; throws when it can't
   */
  constructor(
    start: number,
    end: number,
    private readonly grow: (minEnd: number) => number,
  ) {
    const alignedStart = alignUp(start);
    this.end = end;
    if (end > alignedStart)
      this.freeBlocks.push({ start: alignedStart, size: alignDown(end) - alignedStart });
    else this.end = alignedStart;
  }

  /** Address of a new block of at least `bytes` bytes (a zero-byte request still gets a distinct block). */
  malloc(bytes: number): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`malloc: invalid size ${bytes}`);
    const size = Math.max(ALIGNMENT, alignUp(bytes));
    let index = this.freeBlocks.findIndex((block) => block.size >= size);
    if (index < 0) index = this.extend(size);
    const block = this.freeBlocks[index];
    const address = block.start;
    if (block.size === size) this.freeBlocks.splice(index, 1);
    else {
      block.start += size;
      block.size -= size;
    }
    this.allocated.set(address, size);
    return address;
  }

  free(address: number): void {
    const size = this.allocated.get(address);
    if (size === undefined) throw new Error(`free: ${address} is not an allocated block`);
    this.allocated.delete(address);
    this.insertFree(address, size);
  }

  /** Size actually reserved for an allocated block (its request rounded up), or undefined. */
  sizeOf(address: number): number | undefined {
    return this.allocated.get(address);
  }

  get allocatedBytes(): number {
    let total = 0;
    for (const size of this.allocated.values()) total += size;
    return total;
  }

  get freeBlockCount(): number {
    return this.freeBlocks.length;
  }

  /** Grows the range so that a free block of `size` bytes exists; returns that block's index. */
  private extend(size: number): number {
    const last = this.freeBlocks.at(-1);
    const tailFree = last && last.start + last.size === alignDown(this.end) ? last.size : 0;
    const oldEnd = alignDown(this.end);
    this.end = this.grow(oldEnd - tailFree + size);
    this.insertFree(oldEnd, alignDown(this.end) - oldEnd);
    return this.freeBlocks.length - 1;
  }

  /** Adds [start, start+size) to the free list, merging with the neighbours it touches. */
  private insertFree(start: number, size: number): void {
    const blocks = this.freeBlocks;
    let index = lowerBound(blocks, start);
    const previous = blocks[index - 1];
    if (previous && previous.start + previous.size === start) {
      previous.size += size;
      index -= 1;
    } else {
      blocks.splice(index, 0, { start, size });
    }
    const merged = blocks[index];
    const next = blocks[index + 1];
    if (next && merged.start + merged.size === next.start) {
      merged.size += next.size;
      blocks.splice(index + 1, 1);
    }
  }
}

function alignUp(value: number): number {
  return Math.ceil(value / ALIGNMENT) * ALIGNMENT;
}

function alignDown(value: number): number {
  return Math.floor(value / ALIGNMENT) * ALIGNMENT;
}

/** Index of the first block starting at or after `address`. */
function lowerBound(blocks: FreeBlock[], address: number): number {
  let low = 0;
  let high = blocks.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (blocks[mid].start < address) low = mid + 1;
    else high = mid;
  }
  return low;
}
