/** RoPE on the CPU: wasm over (batch, token) rows. */
import { ROPE } from '../../kernels/rope.ts';
import { wasmKernel, type CpuTable } from '../launcher.ts';

export const rope: CpuTable<typeof ROPE> = {
  // The sin / cos of each pair cost about 100 flops, shared by the heads.
  ropeApply: wasmKernel(ROPE.ropeApply, 'ropeApply', ({ B, T, H, D }) => [
    B * T,
    3 * H * D + 100 * D,
  ]),
};
