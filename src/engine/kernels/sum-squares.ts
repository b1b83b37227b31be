/** The sum of squares of a gradient, for the global gradient norm (clipping). */
import { defineKernel } from './spec.ts';

/** Σ x[i]² over n f32 values (float64 on the CPU, float32 partial sums on WebGPU). */
export const sumSquares = defineKernel({
  name: 'sumSquares',
  buffers: { x: { dtype: 'f32', access: 'read' } },
  params: { n: 'u32' },
  reference({ x }, { n }): number {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += x[i]! * x[i]!;
    return sum;
  },
});

export const SUM_SQUARES = { sumSquares } as const;
