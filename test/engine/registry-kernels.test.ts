// The registry's kernel suite (kernel-cases.ts) on the CPU backend: wasm kernels over 2 worker
// threads (the larger cases are split over both), bit-exact where the CPU computes in the
// reference's float32 order.
import { before } from 'node:test';
import '../../src/engine/cpu/node-host.ts';
import { CpuBackend } from '../../src/engine/cpu/backend.ts';
import { setBackend } from '../../src/engine/tensor.ts';
import { registerKernelCases } from './kernel-cases.ts';

const backend = await CpuBackend.create({ threads: 2 });
before(() => setBackend(backend));

registerKernelCases('cpu', () => backend.kernels, { fused: 0, reduction: 1e-12 });
