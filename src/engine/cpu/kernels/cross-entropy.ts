/** The chunked cross-entropy on the CPU: the per-chunk kernels in wasm over rows, the finishes in JS. */
import { CROSS_ENTROPY } from '../../kernels/cross-entropy.ts';
import { hostKernel, wasmKernel, type CpuTable } from '../launcher.ts';

export const crossEntropy: CpuTable<typeof CROSS_ENTROPY> = {
  ceOnlineChunk: wasmKernel(CROSS_ENTROPY.ceOnlineChunk, 'ceOnlineChunk', (p) => [
    p.rows,
    20 * p.cols + p.accCols,
  ]),
  ceChunkBackward: wasmKernel(CROSS_ENTROPY.ceChunkBackward, 'ceChunkBackward', (p) => [
    p.rows,
    20 * p.cols,
  ]),
  ceOnlineFinish: hostKernel(CROSS_ENTROPY.ceOnlineFinish),
  ceLossFinish: hostKernel(CROSS_ENTROPY.ceLossFinish),
};
