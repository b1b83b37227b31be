/** Quantized weights on the CPU: the wasm exports, split over rows of W. */
import { QUANT } from '../../kernels/quant.ts';
import { wasmKernel, type CpuTable } from '../launcher.ts';

export const quant: CpuTable<typeof QUANT> = {
  dequantizeRows: wasmKernel(QUANT.dequantizeRows, 'dequantizeRows', ({ rows, cols }) => [
    rows,
    cols * 3,
  ]),
  quantizedMatmul: wasmKernel(QUANT.quantizedMatmul, 'quantizedMatmul', ({ rows, cols, count }) => [
    count,
    rows * cols * 3,
  ]),
};
