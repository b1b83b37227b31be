// The registry's kernel suite (test/engine/kernel-cases.ts) on WebGPU, through the backend and
// through a runner whose storage bindings hold 4 KiB, so every flat kernel runs in chunks.
import { bindKernels, type RegistryKernels } from '../../src/engine/kernels/registry.ts';
import { gpuArg } from '../../src/engine/webgpu/backend-kernels.ts';
import { WEBGPU_KERNELS } from '../../src/engine/webgpu/kernel-table.ts';
import { KernelRunner } from '../../src/engine/webgpu/runner.ts';
import { registerKernelCases } from '../engine/kernel-cases.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const setup = await useWebGpuBackend();
const tolerances = { fused: 1e-6, reduction: 1e-5 };

registerKernelCases('webgpu', () => setup.backend().kernels, tolerances, { skip: setup.skip });
let narrow: RegistryKernels | undefined;
registerKernelCases('webgpu, 4 KiB bindings', () => (narrow ??= chunkedKernels()), tolerances, {
  skip: setup.skip,
});

function chunkedKernels(): RegistryKernels {
  const runner = new KernelRunner(setup.backend().gpu.device, { maxBindingBytes: 4096 });
  const kernels = bindKernels(WEBGPU_KERNELS, gpuArg, runner);
  // This runner records apart from the backend's: submit each call before the backend reads.
  return Object.fromEntries(
    Object.entries(kernels).map(([name, run]) => [
      name,
      (...args: Parameters<typeof run>) => {
        const result = (run as (...a: unknown[]) => unknown)(...args);
        runner.flush();
        return result;
      },
    ]),
  ) as unknown as RegistryKernels;
}
