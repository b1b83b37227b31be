/** How kernels address device memory: a GPUBuffer, or a GPUBuffer plus a byte offset into it. */
export type BufferRef = GPUBuffer | { buffer: GPUBuffer; offset: number };

export function refBuffer(ref: BufferRef): GPUBuffer {
  return 'buffer' in ref ? ref.buffer : ref;
}

export function refOffset(ref: BufferRef): number {
  return 'buffer' in ref ? ref.offset : 0;
}

/** `ref` advanced by `bytes`. */
export function advance(ref: BufferRef, bytes: number): BufferRef {
  return { buffer: refBuffer(ref), offset: refOffset(ref) + bytes };
}

/** One buffer argument of a dispatch: where it is and how many elements the kernel touches. */
export interface BufferArg {
  ref: BufferRef;
  elements: number;
}
