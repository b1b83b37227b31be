/** The gated-MLP activations on the CPU: wasm over elements. */
import { ELEMENTWISE } from '../../kernels/elementwise.ts';
import { wasmKernel, type CpuTable } from '../launcher.ts';

export const elementwise: CpuTable<typeof ELEMENTWISE> = {
  gatedForward: wasmKernel(ELEMENTWISE.gatedForward, 'gatedForward', ({ n }) => [n, 20]),
  gatedBackward: wasmKernel(ELEMENTWISE.gatedBackward, 'gatedBackward', ({ n }) => [n, 25]),
};
