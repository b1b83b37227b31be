// Device selection: --device webgpu runs on any adapter; auto is the CPU for now.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { getBackend } from '../../src/engine/tensor.ts';
import { acquireWebGpu } from '../../src/engine/webgpu/device.ts';

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

test('auto is the CPU until training and decoding run on WebGPU', async () => {
  assert.equal(await backendNameFor('auto'), 'cpu');
});
