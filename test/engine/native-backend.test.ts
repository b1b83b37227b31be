// The native backend's own plumbing (the kernels are covered by registry-kernels / gemm / the
// goldens): the loader's variant choice and errors, native memory blocks and the views the
// kernel host hands out, the backend's storage and description.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoraforgeError } from '../../src/util/errors.ts';
import { loadNativeVariant, nativeVariants } from '../../src/engine/native/addon.ts';
import { NativeBackend } from '../../src/engine/native/backend.ts';
import { sizeClass } from '../../src/engine/native/memory.ts';
import { NativeRuntime } from '../../src/engine/native/runtime.ts';
import { nativeTestVariants } from '../cpu-backends.ts';

const { variants, skip } = nativeTestVariants();
const best = variants.at(-1)!;

test('the variants are listed best last, the baseline first and always supported', { skip }, () => {
  const all = nativeVariants();
  assert.ok(all.length >= 1);
  assert.equal(all[0]!.supported, true);
  assert.deepEqual(all[0]!.cpu, []);
  for (const variant of variants) assert.equal(loadNativeVariant(variant).info().variant, variant);
});

test('an unknown variant is one LoraforgeError line naming the choices', { skip }, () => {
  assert.throws(
    () => loadNativeVariant('avx9000'),
    (err: unknown) =>
      err instanceof LoraforgeError &&
      !err.message.includes('\n') &&
      err.message.includes('avx9000') &&
      variants.every((v) => err.message.includes(v)),
  );
});

test(
  'memory: blocks of their own, views inside one block only, free returns them',
  { skip },
  () => {
    const rt = NativeRuntime.create({ threads: 1, variant: best });
    const before = rt.allocatedBytes;
    const a = rt.allocBlock(100);
    const b = rt.allocBlock(4096);
    assert.equal(a.address % 64, 0);
    assert.equal(rt.allocatedBytes - before, 128 + 4096); // size classes
    rt.f32(a.address + 8, 30).fill(1.5); // up to the block's (size class's) last float
    assert.equal(new Float32Array(a.buffer)[2], 1.5);
    assert.throws(() => rt.f32(a.address + 8, 31), /no block holds/);
    rt.u16(b.address + 4094, 1)[0] = 0xbeef;
    assert.equal(new Uint16Array(b.buffer)[2047], 0xbeef);
    rt.free(a.address);
    assert.throws(() => rt.u8(a.address, 1), /no block holds/);
    assert.throws(() => rt.free(a.address), /no native block/);
    rt.free(b.address);
    assert.equal(rt.allocatedBytes, before);
    rt.dispose();
  },
);

test('memory: more than 4 GiB in all, as blocks of 1 GiB (never touched)', { skip }, () => {
  const backend = NativeBackend.create({ threads: 1, variant: best });
  const blocks = Array.from({ length: 5 }, () => backend.alloc(2 ** 30));
  assert.equal(backend.allocatedBytes(), 5 * 2 ** 30);
  // The last byte of the last block, through the host view.
  const last = blocks.at(-1)!;
  backend.upload(last, 2 ** 30 - 1, Uint8Array.of(7));
  assert.deepEqual(backend.readSync(last, 2 ** 30 - 1, 1), Uint8Array.of(7));
  for (const block of blocks) backend.free(block);
  assert.equal(backend.allocatedBytes(), 0);
  backend.dispose();
});

test('size classes: 64-byte steps to 4 KiB, then at most 1/8 more than asked', () => {
  assert.deepEqual([1, 64, 65, 4096].map(sizeClass), [64, 64, 128, 4096]);
  assert.equal(sizeClass(4097), 4608);
  for (const bytes of [5000, 123_457, 10 * 2 ** 20 + 1, 3e9]) {
    const size = sizeClass(bytes);
    assert.ok(size >= bytes && size <= bytes * 1.125 + 64, `${bytes} -> ${size}`);
  }
});

test('freed blocks are reused for their size class, and returned by trim()', { skip }, () => {
  const rt = NativeRuntime.create({ threads: 1, variant: best });
  const a = rt.allocBlock(100_000);
  rt.free(a.address);
  assert.equal(rt.memory.cachedBytes, a.bytes);
  const b = rt.allocBlock(99_000); // the same class
  assert.equal(b.address, a.address);
  assert.equal(rt.memory.cachedBytes, 0);
  const c = rt.allocBlock(300_000);
  assert.notEqual(c.address, a.address);
  rt.free(b.address);
  rt.free(c.address);
  rt.memory.trim();
  assert.equal(rt.memory.cachedBytes, 0);
  assert.equal(rt.allocatedBytes, 0);
  rt.dispose();
});

test('describe() names the variant and the threads', { skip }, () => {
  const backend = NativeBackend.create({ threads: 2, variant: best });
  assert.equal(backend.describe(), `cpu (native ${best}, 2 threads)`);
  assert.equal(backend.name, 'cpu');
  backend.dispose();
});

test('kernels without a work range get their arguments alone (sumSquares)', { skip }, () => {
  const rt = NativeRuntime.create({ threads: 1, variant: best });
  const x = rt.allocBlock(16);
  rt.f32(x.address, 4).set([1, 2, 3, 4]);
  assert.equal(rt.exports.sumSquares!(x.address, 4), 30);
  rt.free(x.address);
  rt.dispose();
});
