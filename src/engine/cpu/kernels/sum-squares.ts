/** The sum of squares on the CPU: one wasm call on the calling thread, accumulated in float64. */
import { SUM_SQUARES } from '../../kernels/sum-squares.ts';
import type { CpuTable } from '../launcher.ts';

export const sumSquares: CpuTable<typeof SUM_SQUARES> = {
  sumSquares: ({ x }, { n }, cpu) => cpu.kernel('sumSquares')(x.ptr, n),
};
