/**
 * WebGPU's implementation of every registry kernel (one file per family, named as the spec's),
 * and the buffer handle they receive: the operand's GPU buffer range plus what a GPUBuffer does
 * not record (the dtype, and the bytes from the offset to the end of the storage, which bound a
 * table read through device-side indices).
 */
import type { DType } from '../dtype.ts';
import type { KernelTable } from '../kernels/registry.ts';
import type { AnySpec, Implementation } from '../kernels/spec.ts';
import { adamw } from './adamw.ts';
import { attention } from './attention.ts';
import { crossEntropy } from './cross-entropy.ts';
import { elementwise } from './elementwise.ts';
import { quant } from './quant.ts';
import { rmsnorm } from './rmsnorm.ts';
import { rope } from './rope.ts';
import { rows } from './rows.ts';
import type { KernelRunner } from './runner.ts';
import { sumSquares } from './sum-squares.ts';
import { vectorOps } from './vector-ops.ts';

export interface GpuArg {
  buffer: GPUBuffer;
  offset: number;
  dtype: DType;
  /** Bytes between `offset` and the end of the storage. */
  bytes: number;
}

/** The WebGPU implementations of a family of specs (`F`: name → spec). */
export type GpuTable<F extends Record<string, AnySpec>> = {
  [K in keyof F]: Implementation<F[K], GpuArg, KernelRunner>;
};

export const WEBGPU_KERNELS: KernelTable<GpuArg, KernelRunner> = {
  ...adamw,
  ...attention,
  ...crossEntropy,
  ...elementwise,
  ...quant,
  ...rmsnorm,
  ...rope,
  ...rows,
  ...sumSquares,
  ...vectorOps,
};
