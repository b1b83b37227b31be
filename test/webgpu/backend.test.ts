// WebGPU backend storage: word-unaligned transfers, the buffer pool, reads of kernel results.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor } from '../../src/engine/tensor.ts';
import { sizeClass } from '../../src/engine/webgpu/buffer-pool.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const gpu = await useWebGpuBackend();
const { skip } = gpu;

test('half tensors of odd length and views at odd elements round-trip', { skip }, async () => {
  const bits = Uint16Array.from([0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0]);
  const t = Tensor.from(bits, [5], 'bf16');
  assert.deepEqual(new Uint16Array((await t.bytesOut()).slice().buffer), bits);
  const view = t.view([3], 1);
  assert.deepEqual(new Uint16Array((await view.bytesOut()).slice().buffer), bits.subarray(1, 4));
  view.dispose();
  t.dispose();
});

test('freed buffers are reused within their size class', { skip }, () => {
  const backend = gpu.backend();
  const before = backend.allocatedBytes();
  backend.free(backend.alloc(1000));
  const created = backend.createdBuffers;
  const storage = backend.alloc(1010);
  assert.equal(backend.createdBuffers, created);
  assert.equal(backend.allocatedBytes(), before + sizeClass(1010));
  backend.free(storage);
  assert.equal(backend.allocatedBytes(), before);
});

test('size classes waste at most an eighth and stay word-aligned', () => {
  for (const bytes of [1, 256, 257, 1000, 4096, 4097, 123_456_789]) {
    const size = sizeClass(bytes);
    assert.ok(size >= bytes && size % 4 === 0, `${bytes} -> ${size}`);
    assert.ok(bytes <= 256 || size <= bytes * 1.125, `${bytes} -> ${size}`);
  }
});

test('sumSquares returns the kernel result to the host', { skip }, async () => {
  const x = Tensor.from(Float32Array.from([1, 2, 3, 4]), [4]);
  assert.equal(await gpu.backend().kernels.sumSquares({ x: x.operand() }, { n: 4 }), 30);
  x.dispose();
});
