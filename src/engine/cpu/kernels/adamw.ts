/** AdamW on the CPU: the wasm `adamwStep` over the pool (kernels/adamw.ts). */
import { ADAMW } from '../../kernels/adamw.ts';
import { wasmKernel, type CpuTable } from '../launcher.ts';

export const adamw: CpuTable<typeof ADAMW> = {
  adamwStep: wasmKernel(ADAMW.adamwStep, 'adamwStep', ({ n }) => [n, 15]),
};
