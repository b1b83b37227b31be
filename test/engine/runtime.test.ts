import '../../src/engine/cpu/node-host.ts';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { FreeListAllocator, ALIGNMENT } from '../../src/engine/cpu/allocator.ts';
import { WasmRuntime, getRuntime } from '../../src/engine/cpu/runtime.ts';

describe('FreeListAllocator', () => {
  /** An allocator over [64, 64 + 1024) whose growth calls are recorded. */
  function small() {
    const grows: number[] = [];
    let end = 64 + 1024;
    const allocator = new FreeListAllocator(64, end, (minEnd) => {
      grows.push(minEnd);
      end = Math.ceil(minEnd / 4096) * 4096;
      return end;
    });
    return { allocator, grows };
  }

  it('hands out distinct 64-byte-aligned blocks', () => {
    const { allocator } = small();
    const blocks = [1, 0, 63, 64, 65, 200].map(
      (bytes) => [allocator.malloc(bytes), bytes] as const,
    );
    for (const [ptr] of blocks) assert.equal(ptr % ALIGNMENT, 0);
    const sorted = [...blocks].sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < sorted.length; i++) {
      const [previous, bytes] = sorted[i - 1];
      assert.ok(sorted[i][0] >= previous + Math.max(bytes, 1), 'blocks overlap');
    }
  });

  it('reuses freed blocks first-fit', () => {
    const { allocator } = small();
    const a = allocator.malloc(128);
    const b = allocator.malloc(128);
    allocator.malloc(64);
    allocator.free(a);
    assert.equal(allocator.malloc(100), a);
    allocator.free(b);
    assert.equal(allocator.malloc(64), b);
  });

  it('coalesces neighbours on free', () => {
    const { allocator } = small();
    const blocks = [0, 1, 2, 3].map(() => allocator.malloc(128));
    const initialFreeBlocks = allocator.freeBlockCount;
    allocator.free(blocks[0]);
    allocator.free(blocks[2]);
    assert.equal(allocator.freeBlockCount, initialFreeBlocks + 2);
    allocator.free(blocks[1]); // joins 0 and 2
    assert.equal(allocator.freeBlockCount, initialFreeBlocks + 1);
    assert.equal(allocator.malloc(384), blocks[0]);
    allocator.free(blocks[0]);
    allocator.free(blocks[3]); // everything is one block again
    assert.equal(allocator.freeBlockCount, 1);
    assert.equal(allocator.allocatedBytes, 0);
  });

  it('grows the range when nothing fits, reusing the free tail', () => {
    const { allocator, grows } = small();
    const first = allocator.malloc(512);
    const big = allocator.malloc(4000);
    assert.equal(grows.length, 1);
    assert.equal(big, first + 512, 'the free tail before the old end is part of the new block');
    assert.ok(grows[0] >= big + 4000);
    assert.equal(allocator.sizeOf(big), 4032);
  });

  it('rejects double and foreign frees', () => {
    const { allocator } = small();
    const a = allocator.malloc(10);
    allocator.free(a);
    assert.throws(() => allocator.free(a), /not an allocated block/);
    assert.throws(() => allocator.free(12345), /not an allocated block/);
  });
});

describe('WasmRuntime', () => {
  let rt: WasmRuntime;
  before(async () => {
    rt = await WasmRuntime.create({ threads: 2 });
  });
  after(() => rt.dispose());

  it('uses the relaxed-SIMD build (or its wide GEMM variant) when the engine supports it', () => {
    assert.ok(rt.kernels === 'relaxed' || rt.kernels === 'wide', rt.kernels);
    assert.equal(rt.threads, 2);
  });

  it('grows the shared memory for large allocations and keeps old data', () => {
    const before = rt.memory.buffer.byteLength;
    const small = rt.malloc(16);
    rt.u8(small, 16).fill(7);
    const big = rt.malloc(before + (1 << 20));
    assert.ok(rt.memory.buffer.byteLength >= big + before + (1 << 20));
    assert.deepEqual([...rt.u8(small, 16)], new Array(16).fill(7));
    rt.f32(big, 4).set([1, 2, 3, 4]);
    assert.deepEqual([...rt.i32(big, 1)], [0x3f800000]);
    rt.free(big);
    rt.free(small);
  });

  it('parallelFor runs every index of [0, total) exactly once', () => {
    // gemmPart over `total` parts: with beta = 1 a part run twice (or never) changes C.
    const m = 40;
    const n = 8 * 25;
    const k = 3;
    const total = 7;
    const a = rt.malloc(m * k * 4);
    const b = rt.malloc(k * n * 4);
    const c = rt.malloc(m * n * 4);
    const scratchStride = Math.ceil(Number(rt.exports.gemmScratchBytes()) / 64) * 64;
    const scratch = rt.malloc(scratchStride * total);
    rt.f32(a, m * k).fill(1);
    rt.f32(b, k * n).fill(2);
    rt.f32(c, m * n).fill(10);
    rt.parallelFor('gemmPart', total, [
      m,
      n,
      k,
      a,
      k,
      0,
      0,
      b,
      n,
      0,
      0,
      c,
      n,
      1,
      1,
      0,
      scratch,
      scratchStride,
      total,
    ]);
    assert.ok(rt.f32(c, m * n).every((value) => value === 16));
    for (const ptr of [a, b, c, scratch]) rt.free(ptr);
  });

  it('parallelFor rejects unknown exports', () => {
    assert.throws(() => rt.parallelFor('noSuchKernel', 4, []), /no wasm export/);
  });

  it('surfaces a trap in a worker as an exception', () => {
    // Out-of-bounds C: every part traps, on the main thread and in the worker alike.
    const scratchStride = Math.ceil(Number(rt.exports.gemmScratchBytes()) / 64) * 64;
    const scratch = rt.malloc(scratchStride * 2);
    const operands = rt.malloc(64 * 4 * 4);
    const tooFar = rt.memory.buffer.byteLength - 64;
    const args = [
      64,
      64,
      4,
      operands,
      4,
      0,
      0,
      operands,
      64,
      0,
      0,
      tooFar,
      64,
      1,
      0,
      0,
      scratch,
      scratchStride,
      2,
    ];
    assert.throws(() => rt.parallelFor('gemmPart', 2, args), /out of bounds/);
    // Only the worker's half of the columns (32..63 of one row) lies past the end of memory.
    const lastColumns = rt.memory.buffer.byteLength - 32 * 4;
    const workerOnly = [
      1,
      64,
      4,
      operands,
      4,
      0,
      0,
      operands,
      64,
      0,
      0,
      lastColumns,
      64,
      1,
      0,
      0,
      scratch,
      scratchStride,
      2,
    ];
    assert.throws(
      () => rt.parallelFor('gemmPart', 2, workerOnly),
      /failed in a worker: worker 1: .*out of bounds/s,
    );
    rt.free(scratch);
    rt.free(operands);
    // The pool is still usable afterwards.
    const c = rt.malloc(4);
    rt.gemm({
      m: 1,
      n: 1,
      k: 1,
      a: c,
      lda: 1,
      transA: false,
      aDtype: 'f32',
      b: c,
      ldb: 1,
      transB: false,
      bDtype: 'f32',
      c,
      ldc: 1,
    });
    rt.free(c);
  });

  it('getRuntime returns one shared instance', async () => {
    const shared = await getRuntime({ threads: 1 });
    assert.equal(await getRuntime(), shared);
    shared.dispose();
    assert.notEqual(await getRuntime({ threads: 1 }), shared);
    (await getRuntime()).dispose();
  });

  it('lets the process exit without dispose()', () => {
    const runtimeUrl = new URL('../../src/engine/cpu/runtime.ts', import.meta.url).href;
    const hostUrl = new URL('../../src/engine/cpu/node-host.ts', import.meta.url).href;
    const script = `
      import('${hostUrl}').then(() => import('${runtimeUrl}')).then(async ({ WasmRuntime }) => {
        const rt = await WasmRuntime.create({ threads: 2 });
        rt.parallelFor('gemmScratchBytes', 2, []);
        console.log('done');
      });`;
    // Script on stdin (CommonJS, hence the dynamic import): a hanging worker would hit the timeout.
    const result = spawnSync(process.execPath, ['--import', 'tsx'], {
      input: script,
      encoding: 'utf8',
      timeout: 20000,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /done/);
  });
});
