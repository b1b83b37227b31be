/**
 * The registry kernels on a KernelRunner of a test's own (other limits, another attention plan):
 * that runner records apart from the backend's, so each call is submitted before the backend
 * reads its results.
 */
import { bindKernels, type RegistryKernels } from '../../src/engine/kernels/registry.ts';
import { gpuArg } from '../../src/engine/webgpu/backend-kernels.ts';
import { WEBGPU_KERNELS } from '../../src/engine/webgpu/kernel-table.ts';
import type { KernelRunner } from '../../src/engine/webgpu/runner.ts';

export function kernelsOnRunner(runner: KernelRunner): RegistryKernels {
  const kernels = bindKernels(WEBGPU_KERNELS, gpuArg, runner);
  return Object.fromEntries(
    Object.entries(kernels).map(([name, run]) => [
      name,
      (...args: unknown[]) => {
        const result = (run as (...a: unknown[]) => unknown)(...args);
        runner.flush();
        return result;
      },
    ]),
  ) as unknown as RegistryKernels;
}
