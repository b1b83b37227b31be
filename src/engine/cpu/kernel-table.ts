/** The CPU's implementation of every registry kernel (one file per family under cpu/kernels/). */
import type { KernelTable } from '../kernels/registry.ts';
import { adamw } from './kernels/adamw.ts';
import { attention } from './kernels/attention.ts';
import { crossEntropy } from './kernels/cross-entropy.ts';
import { elementwise } from './kernels/elementwise.ts';
import { quant } from './kernels/quant.ts';
import { rmsnorm } from './kernels/rmsnorm.ts';
import { rope } from './kernels/rope.ts';
import { rows } from './kernels/rows.ts';
import { sumSquares } from './kernels/sum-squares.ts';
import { vectorOps } from './kernels/vector-ops.ts';
import type { CpuArg, CpuLauncher } from './launcher.ts';

export const CPU_KERNELS: KernelTable<CpuArg, CpuLauncher> = {
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
