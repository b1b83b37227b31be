// DeviceAdamW and device gradient clipping (the Trainer's WebGPU path) against the host
// reference implementations, and checkpoint states moving between the two.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor } from '../../src/engine/tensor.ts';
import { clipGradNorm } from '../../src/train/clip.ts';
import { clipDeviceGradNorm } from '../../src/train/device-clip.ts';
import { DeviceAdamW } from '../../src/train/device-optimizer.ts';
import { AdamW, type NamedParameter } from '../../src/train/optimizer.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff } from '../helpers.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const { skip } = await useWebGpuBackend();

const SIZES = [64, 1000, 7];
const HYPER = { lr: 1e-2, weightDecay: 0.01 };

function normals(rng: Rng, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal(0, scale));
}

/** The same parameters and gradients on the host and as device tensors. */
function twinParameters(seed: number): {
  host: NamedParameter[];
  device: { name: string; tensor: Tensor }[];
} {
  const rng = new Rng(seed);
  const host = SIZES.map((n, i) => ({
    name: `p${i}`,
    data: normals(rng, n, 0.1),
    grad: normals(rng, n, 0.01),
  }));
  const device = host.map(({ name, data, grad }) => {
    const tensor = Tensor.from(data, [data.length]).keep();
    tensor.grad = Tensor.from(grad, [grad.length]).keep();
    return { name, tensor };
  });
  return { host, device };
}

async function assertClose(
  host: NamedParameter[],
  device: { tensor: Tensor }[],
  tolerance: number,
): Promise<void> {
  for (const [i, p] of host.entries()) {
    const diff = maxAbsDiff(await device[i]!.tensor.toFloat32(), p.data);
    assert.ok(diff < tolerance, `${p.name}: max abs diff ${diff}`);
  }
}

test('DeviceAdamW follows the host AdamW over 5 steps', { skip }, async () => {
  const { host, device } = twinParameters(1);
  const reference = new AdamW(host, HYPER);
  const adamw = new DeviceAdamW(device, HYPER);
  for (let step = 0; step < 5; step++) {
    reference.step();
    adamw.step();
  }
  await assertClose(host, device, 1e-6);
});

test('DeviceAdamW checkpoint states load into the host AdamW and back', { skip }, async () => {
  const { host, device } = twinParameters(2);
  const reference = new AdamW(host, HYPER);
  const adamw = new DeviceAdamW(device, HYPER);
  reference.step();
  reference.step();
  // The host's state resumed on the device continues as the host does ...
  adamw.loadStateDict(reference.stateDict());
  for (const [i, p] of host.entries())
    device[i]!.tensor.backend.upload(device[i]!.tensor.storage, 0, p.data);
  reference.step();
  adamw.step();
  await assertClose(host, device, 1e-6);
  // ... and the device's state, downloaded, is the host's format with the same step count.
  const saved = await adamw.stateDict();
  assert.equal(saved.meta.step, 3);
  const fresh = new AdamW(twinParameters(2).host, HYPER);
  fresh.loadStateDict(saved);
  for (const [key, values] of Object.entries(reference.stateDict().tensors)) {
    assert.ok(maxAbsDiff(saved.tensors[key]!, values) < 1e-6, key);
  }
});

test('device gradient clipping matches clip_grad_norm_ on the host', { skip }, async () => {
  const { host, device } = twinParameters(3);
  const grads = device.map((d) => d.tensor.grad!);
  const hostNorm = clipGradNorm(
    host.map((p) => p.grad),
    0.05,
  );
  const deviceNorm = await clipDeviceGradNorm(grads, 0.05);
  assert.ok(Math.abs(deviceNorm - hostNorm) / hostNorm < 1e-6, `norm ${deviceNorm} vs ${hostNorm}`);
  for (const [i, p] of host.entries()) {
    assert.ok(maxAbsDiff(await grads[i]!.toFloat32(), p.grad) < 1e-9, p.name);
  }
});
