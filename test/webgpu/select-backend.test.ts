// Device selection: --device webgpu runs on any adapter, auto only on a hardware one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { getBackend } from '../../src/engine/tensor.ts';
import { hasHardwareAdapter } from '../../src/engine/webgpu/adapter-probe.ts';
import { acquireWebGpu } from '../../src/engine/webgpu/device.ts';

const context = await acquireWebGpu().catch(() => null);
const adapterName = context
  ? `${context.adapterInfo.device} ${context.adapterInfo.description}`
  : '';
context?.destroy();
const software = /llvmpipe|lavapipe|swiftshader/i.test(adapterName);
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

test(
  'auto stays on the CPU with a software adapter',
  { skip: skip || (!software && 'hardware adapter') },
  async () => {
    assert.equal(await hasHardwareAdapter(), false);
    assert.equal(await backendNameFor('auto'), 'cpu');
  },
);

test(
  'auto picks WebGPU on a hardware adapter',
  { skip: skip || ((software || !context) && 'no hardware adapter') },
  async () => {
    assert.equal(await backendNameFor('auto'), 'webgpu');
  },
);
