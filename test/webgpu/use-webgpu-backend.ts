/**
 * Activates a WebGPU backend for a test file (the test runner gives each file its own process).
 * Without an adapter the file's first test fails, unless LORAFORGE_SKIP_WEBGPU=1 outside CI asks
 * for every test to be skipped (the convention of test/webgpu/kernels.test.ts).
 */
import { after, before, test } from 'node:test';
import { setBackend } from '../../src/engine/tensor.ts';
import { WebGpuBackend } from '../../src/engine/webgpu/backend.ts';
import { fileTuneStore } from '../../src/engine/webgpu/tune-store-file.ts';

export interface WebGpuTestSetup {
  /** Truthy (a reason) when the file's tests should be skipped. */
  skip: string | false;
  backend(): WebGpuBackend;
}

export async function useWebGpuBackend(): Promise<WebGpuTestSetup> {
  let backend: WebGpuBackend | null = null;
  let acquireError: unknown = null;
  try {
    backend = await WebGpuBackend.create({ store: fileTuneStore() });
  } catch (err) {
    acquireError = err;
  }
  const skip =
    backend === null && !process.env.CI && process.env.LORAFORGE_SKIP_WEBGPU === '1'
      ? 'LORAFORGE_SKIP_WEBGPU=1'
      : false;
  test('a WebGPU adapter is available', { skip }, () => {
    if (acquireError) {
      throw new Error(
        `no WebGPU device (${(acquireError as Error).message}); run scripts/install-lavapipe.sh as root, ` +
          'or set LORAFORGE_SKIP_WEBGPU=1 outside CI to skip these tests',
      );
    }
  });
  before(() => {
    if (backend) setBackend(backend);
  });
  after(() => backend?.dispose());
  return {
    skip,
    backend: () => {
      if (!backend) throw new Error('no WebGPU backend');
      return backend;
    },
  };
}
