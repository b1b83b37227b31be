/** GGUF writer/reader round trip and the block quantizers against their own decoders. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { GgufMetadata } from '../../src/io/gguf/format.ts';
import { GGML_TYPES, type GgmlTypeName } from '../../src/io/gguf/ggml-types.ts';
import { GgufReader } from '../../src/io/gguf/reader.ts';
import { writeGguf } from '../../src/io/gguf/writer.ts';
import { Rng } from '../../src/util/rng.ts';

function randomValues(n: number, seed: number, std = 0.02): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal(0, std);
  return out;
}

test('gguf: every metadata value type, tensor infos and aligned data round-trip', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-gguf-'));
  const path = join(dir, 'm.gguf');
  const metadata: GgufMetadata = new Map([
    ['a.u8', { type: 'u8', value: 255 }],
    ['a.i8', { type: 'i8', value: -128 }],
    ['a.u16', { type: 'u16', value: 65535 }],
    ['a.i16', { type: 'i16', value: -32768 }],
    ['a.u32', { type: 'u32', value: 4294967295 }],
    ['a.i32', { type: 'i32', value: -5 }],
    ['a.f32', { type: 'f32', value: 0.5 }],
    ['a.bool', { type: 'bool', value: true }],
    ['a.string', { type: 'string', value: '小李 🙂' }],
    ['a.u64', { type: 'u64', value: 2n ** 63n }],
    ['a.i64', { type: 'i64', value: -(2n ** 40n) }],
    ['a.f64', { type: 'f64', value: 1e-300 }],
    ['a.strings', { type: 'array', itemType: 'string', values: ['x', '', 'Ġy'] }],
    ['a.ints', { type: 'array', itemType: 'i32', values: [1, -2, 3] }],
  ]);
  const w = randomValues(3 * 5, 1);
  const b = randomValues(3, 2);
  await writeGguf(path, metadata, [
    {
      name: 'w',
      shape: [3, 5],
      type: GGML_TYPES.F32,
      chunks: () => [w.subarray(0, 10), w.subarray(10)],
    },
    { name: 'b', shape: [3], type: GGML_TYPES.F16, chunks: () => [b] },
  ]);
  const r = GgufReader.open(path);
  assert.equal(r.version, 3);
  assert.deepEqual([...r.metadata], [...metadata]);
  assert.deepEqual(r.tensor('w').shape, [3, 5]);
  assert.equal(r.tensor('w').start % 32, 0);
  assert.equal(r.tensor('b').start % 32, 0);
  assert.deepEqual(r.values('w'), w);
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(r.values('b')[i]! - b[i]!) < 1e-4);
  // The ne dimensions are stored innermost first.
  const bytes = readFileSync(path);
  assert.equal(bytes.readUInt32LE(0), 0x46554747);
  rmSync(dir, { recursive: true, force: true });
});

test('gguf: an existing file is refused without overwrite; a failed write leaves nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-gguf-'));
  const path = join(dir, 'm.gguf');
  writeFileSync(path, 'old');
  const one = {
    name: 'x',
    shape: [32],
    type: GGML_TYPES.F32,
    chunks: () => [new Float32Array(32)],
  };
  await assert.rejects(writeGguf(path, new Map(), [one]), /already exists.*|--overwrite/);
  assert.equal(readFileSync(path, 'utf8'), 'old');
  const failing = {
    ...one,
    chunks: (): Float32Array[] => {
      throw new Error('interrupted');
    },
  };
  await assert.rejects(
    writeGguf(path, new Map(), [one, failing], { overwrite: true }),
    /interrupted/,
  );
  assert.equal(readFileSync(path, 'utf8'), 'old', 'the old file is untouched');
  const fresh = join(dir, 'new.gguf');
  await assert.rejects(writeGguf(fresh, new Map(), [one, failing]), /interrupted/);
  assert.equal(existsSync(fresh), false);
  assert.deepEqual(readdirSync(dir), ['m.gguf'], 'no temporary file is left');
  await writeGguf(path, new Map(), [one], { overwrite: true });
  assert.equal(GgufReader.open(path).tensors.length, 1);
  rmSync(dir, { recursive: true, force: true });
});

/** Root-mean-square error relative to the values' RMS. */
function relativeRms(a: Float32Array, b: Float32Array): number {
  let err = 0;
  let ref = 0;
  for (let i = 0; i < a.length; i++) {
    err += (a[i]! - b[i]!) ** 2;
    ref += a[i]! ** 2;
  }
  return Math.sqrt(err / ref);
}

// Bounds from the code widths: 8-bit ≈ 0.4%, 6-bit ≈ 2%, 5-bit ≈ 4%, 4-bit ≈ 8% for Gaussian data.
const BOUNDS: [GgmlTypeName, number][] = [
  ['Q8_0', 0.008],
  ['Q6_K', 0.03],
  ['Q5_0', 0.06],
  ['Q4_K', 0.1],
];

for (const [name, bound] of BOUNDS) {
  test(`gguf: ${name} encodes within ${bound} relative RMS error and decodes its own bytes`, () => {
    const type = GGML_TYPES[name];
    const x = randomValues(4096, 7, 0.05);
    // Outliers and an all-positive and an all-zero block exercise the scale and offset limits.
    x[5] = 0.9;
    x[300] = -0.7;
    for (let i = 512; i < 768; i++) x[i] = 0.01 + Math.abs(x[i]!);
    x.fill(0, 1024, 1280);
    const bytes = type.encode(x);
    assert.equal(bytes.length, (x.length / type.blockSize) * type.blockBytes);
    const y = type.decode(bytes, x.length);
    const err = relativeRms(x, y);
    assert.ok(err < bound, `${name}: ${err}`);
    for (let i = 1024; i < 1280; i++) assert.ok(y[i] === 0, `${i}: ${y[i]}`);
    assert.ok(Math.abs(y[5]! - 0.9) < 0.9 * bound, `${name} outlier ${y[5]}`);
  });
}
