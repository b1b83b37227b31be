/** Quantized weights on the CPU: the wasm exports, split over rows of W (quantizeRows: blocks). */
import { QUANT } from '../../kernels/quant.ts';
import { wasmKernel, type CpuTable } from '../launcher.ts';

const quantizeBlocks = wasmKernel(QUANT.quantizeRows, 'quantizeRows', ({ n, blockSize }) => [
  Math.ceil(n / blockSize),
  blockSize * 24,
]);

export const quant: CpuTable<typeof QUANT> = {
  dequantizeRows: wasmKernel(QUANT.dequantizeRows, 'dequantizeRows', ({ rows, cols }) => [
    rows,
    cols * 3,
  ]),
  quantizedMatmul: wasmKernel(QUANT.quantizedMatmul, 'quantizedMatmul', ({ rows, cols, count }) => [
    count,
    rows * cols * 3,
  ]),
  // The compiled kernel reads x as `source` says: the operand must hold that dtype.
  quantizeRows: (buffers, params, cpu) => {
    if (buffers.x.dtype !== params.source)
      throw new Error(`quantizeRows: x is ${buffers.x.dtype}, source says ${params.source}`);
    quantizeBlocks(buffers, params, cpu);
  },
};
