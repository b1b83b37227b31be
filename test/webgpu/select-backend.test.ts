// Device selection: --device webgpu runs on any adapter; auto takes WebGPU only on a hardware GPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { getBackend } from '../../src/engine/tensor.ts';
import {
  acquireWebGpu,
  hasHardwareGpu,
  isHardwareAdapter,
} from '../../src/engine/webgpu/device.ts';

const context = await acquireWebGpu().catch(() => null);
context?.destroy();
const skip =
  !context &&
  !process.env.CI &&
  process.env.LORAFORGE_SKIP_WEBGPU === '1' &&
  'LORAFORGE_SKIP_WEBGPU=1';

async function backendNameFor(device: 'webgpu' | 'auto'): Promise<string> {
  const backend = await selectBackend({ device, threads: 1 });
  assert.equal(getBackend(), backend);
  backend.dispose();
  return backend.name;
}

test('--device webgpu activates the WebGPU backend', { skip }, async () => {
  assert.equal(await backendNameFor('webgpu'), 'webgpu');
});

test('software adapters are told apart from hardware GPUs', () => {
  const lavapipe = {
    vendor: 'mesa',
    architecture: 'software',
    description: 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)',
    isFallbackAdapter: true,
  };
  assert.equal(isHardwareAdapter(lavapipe), false);
  assert.equal(isHardwareAdapter({ ...lavapipe, isFallbackAdapter: undefined }), false);
  assert.equal(isHardwareAdapter({ description: 'SwiftShader Device (Subzero)' }), false);
  const h100 = { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' };
  assert.equal(isHardwareAdapter(h100), true);
  assert.equal(isHardwareAdapter({ ...h100, isFallbackAdapter: false }), true);
});

test('auto takes WebGPU on a hardware GPU and the CPU otherwise (lavapipe here)', async () => {
  const expected = (await hasHardwareGpu()) ? 'webgpu' : 'cpu';
  if (process.env.CI)
    assert.equal(expected, 'cpu', 'CI has no GPU: lavapipe is a software adapter');
  assert.equal(await backendNameFor('auto'), expected);
});
