/**
 * The engine's `Kernels` on WebGPU: `gpuArg`, the one adapter from an `Operand` (storage + byte
 * offset + dtype) to what the WGSL kernels bind (kernel-table.ts), and GEMM, which takes its
 * operands whole. A GPU buffer records neither dtype nor extent, so both travel with the buffer.
 */
import type { GemmOptions, Kernels, Operand, Storage } from '../backend.ts';
import type { DType } from '../dtype.ts';
import type { BufferRef } from './buffer-ref.ts';
import type { GemmDtype } from './gemm.ts';
import type { GpuArg } from './kernel-table.ts';
import type { WebGpuKernels } from './kernels.ts';

export interface GpuStorage extends Storage {
  readonly buffer: GPUBuffer;
}

/** The generic adapter Operand → buffer range of every registry kernel. */
export function gpuArg(o: Operand): GpuArg {
  const { buffer, bytes } = o.storage as GpuStorage;
  return { buffer, offset: o.byteOffset, dtype: o.dtype, bytes: bytes - o.byteOffset };
}

function bufferRef(o: Operand): BufferRef {
  return { buffer: (o.storage as GpuStorage).buffer, offset: o.byteOffset };
}

function floatDType(dtype: DType): GemmDtype {
  if (dtype === 'i32') throw new Error('gemm on an i32 tensor');
  return dtype;
}

/** GEMM through the device's tuned plan; every other kernel comes from the registry. */
export class WebGpuGemm implements Pick<Kernels, 'gemm'> {
  constructor(private readonly gpu: WebGpuKernels) {}

  gemm(a: Operand, b: Operand, c: Operand, o: GemmOptions): void {
    this.gpu.gemm({
      ...o,
      a: bufferRef(a),
      b: bufferRef(b),
      c: bufferRef(c),
      bias: o.bias ? bufferRef(o.bias) : null,
      aDtype: floatDType(a.dtype),
      bDtype: floatDType(b.dtype),
    });
  }
}
