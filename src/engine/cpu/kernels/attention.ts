/**
 * Attention on the CPU: the forward per (batch, query head); the backward per (batch, kv head),
 * or, when there are too few of those to keep the threads busy, split differently: dq per query
 * head, dk / dv per block of keys (more arithmetic, all threads busy).
 */
import { ATTENTION } from '../../kernels/attention.ts';
import { paramNumbers } from '../../kernels/spec.ts';
import { wasmKernel, type CpuTable } from '../launcher.ts';

/** Time of the split attention backward relative to the fused one on the same threads (measured). */
const SPLIT_BACKWARD_COST = 1.8;

export const attention: CpuTable<typeof ATTENTION> = {
  attentionForward: wasmKernel(ATTENTION.attentionForward, 'attentionForward', (p) => [
    p.B * p.H,
    2 * p.Tq * p.Tk * p.D,
  ]),
  attentionBackward: (b, params, cpu) => {
    const { B, T, H, KVH, D } = params;
    const ptr = (name: keyof typeof b) => b[name]?.ptr ?? 0;
    const masks = [ptr('keyMask'), ptr('segIds')];
    const dims = paramNumbers(ATTENTION.attentionBackward, params);
    const inputs = [ptr('q'), ptr('k'), ptr('v'), ptr('out'), ptr('lse'), ptr('dout')];
    // Per query head: 2 dots + 3 axpys of length D (2 flops each) per visible pair, ~T²/2 pairs.
    const pairFlops = 5 * T * T * D;
    const fusedRounds = Math.ceil((B * KVH) / cpu.threads);
    if (!cpu.parallel || (SPLIT_BACKWARD_COST * B * KVH) / cpu.threads >= fusedRounds) {
      const args = [...inputs, ptr('dq'), ptr('dk'), ptr('dv'), ...masks, ...dims];
      cpu.run('attentionBackward', B * KVH, (H / KVH) * pairFlops, args);
      return;
    }
    cpu.run('attentionBackwardQuery', B * H, pairFlops, [...inputs, ptr('dq'), ...masks, ...dims]);
    // Enough key blocks for about four work items per thread.
    const keyBlock = Math.max(8, Math.ceil((B * KVH * T) / (4 * cpu.threads)));
    const items = B * KVH * Math.ceil(T / keyBlock);
    const kvArgs = [...inputs, ptr('dk'), ptr('dv'), ...masks, ...dims, keyBlock];
    cpu.run('attentionBackwardKeyValue', items, ((H / KVH) * pairFlops * B * KVH) / items, kvArgs);
  },
};
