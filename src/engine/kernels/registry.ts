/**
 * Every kernel of the registry, by name: what `Backend.kernels` dispatches over and what each
 * backend implements (cpu/kernel-table.ts, webgpu/kernel-table.ts), and what test/engine's kernel
 * suite runs against each spec's reference on every backend.
 */
import type { Operand } from '../backend.ts';
import { ADAMW } from './adamw.ts';
import { ATTENTION } from './attention.ts';
import { CROSS_ENTROPY } from './cross-entropy.ts';
import { ELEMENTWISE } from './elementwise.ts';
import { RMSNORM } from './rmsnorm.ts';
import { QUANT } from './quant.ts';
import { ROPE } from './rope.ts';
import { ROWS } from './rows.ts';
import type { AnySpec, Dispatch, Implementation } from './spec.ts';
import { SUM_SQUARES } from './sum-squares.ts';
import { VECTOR_OPS } from './vector-ops.ts';

/** The families of kernels (one file each, the same name in every backend). */
export const KERNELS = {
  ...ADAMW,
  ...ATTENTION,
  ...CROSS_ENTROPY,
  ...ELEMENTWISE,
  ...RMSNORM,
  ...QUANT,
  ...ROPE,
  ...ROWS,
  ...SUM_SQUARES,
  ...VECTOR_OPS,
} as const;

export type KernelName = keyof typeof KERNELS;

/** The registry's kernels as a backend offers them to ops: operands and params by name. */
export type RegistryKernels = { [K in KernelName]: Dispatch<(typeof KERNELS)[K]> };

/** One backend's implementation of every kernel, given its buffer handle `T` and context `C`. */
export type KernelTable<T, C> = { [K in KernelName]: Implementation<(typeof KERNELS)[K], T, C> };

/**
 * The generic adapter of one backend: each named operand becomes the backend's handle (`adapt`:
 * a pointer on the CPU, a buffer range on WebGPU) and the kernel's implementation runs with it.
 */
export function bindKernels<T, C>(
  table: KernelTable<T, C>,
  adapt: (operand: Operand) => T,
  context: C,
): RegistryKernels {
  const bound: Record<string, unknown> = {};
  for (const name of Object.keys(KERNELS) as KernelName[]) {
    const implementation = table[name] as (
      buffers: Record<string, T | null>,
      params: unknown,
      context: C,
    ) => unknown;
    const spec: AnySpec = KERNELS[name];
    const buffers = Object.keys(spec.buffers);
    bound[name] = (operands: Record<string, Operand | null>, params: unknown) => {
      const handles: Record<string, T | null> = {};
      for (const buffer of buffers) {
        const operand = operands[buffer];
        handles[buffer] = operand ? adapt(operand) : null;
      }
      const result = implementation(handles, params, context);
      // A kernel with a result hands it over asynchronously on every backend.
      return result === undefined ? undefined : Promise.resolve(result);
    };
  }
  return bound as RegistryKernels;
}
