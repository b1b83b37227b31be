/** Dequantization of quantized weights on the CPU: the wasm export, split over rows. */
import { QUANT } from '../../kernels/quant.ts';
import { wasmKernel, type CpuTable } from '../wasm-launcher.ts';

export const quant: CpuTable<typeof QUANT> = {
  dequantizeRows: wasmKernel(QUANT.dequantizeRows, 'dequantizeRows', ({ rows, cols }) => [
    rows,
    cols * 3,
  ]),
};
