/** The CPU's implementation of every registry kernel (one file per family under cpu/kernels/). */
import type { KernelTable } from '../kernels/registry.ts';
import { adamw } from './kernels/adamw.ts';
import { sumSquares } from './kernels/sum-squares.ts';
import { vectorOps } from './kernels/vector-ops.ts';
import type { CpuArg, CpuKernels } from './kernels.ts';

export const CPU_KERNELS: KernelTable<CpuArg, CpuKernels> = {
  ...adamw,
  ...sumSquares,
  ...vectorOps,
};
