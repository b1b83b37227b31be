import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SafetensorsFile,
  bf16ToF32,
  bytesToF32,
  bytesToI32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  i64ToI32,
  openSafetensorsFolder,
  readSafetensorsHeader,
  writeSafetensors,
  writeSafetensorsStreaming,
  type NamedTensorData,
} from '../../src/io/safetensors.ts';
import { SafetensorsBuffer } from '../../src/io/safetensors-buffer.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { GOLDEN as GOLDEN_ROOT } from '../helpers.ts';

const GOLDEN = `${GOLDEN_ROOT}/qwen2-tiny`;

function goldenFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? goldenFiles(join(dir, e.name))
      : e.name.endsWith('.safetensors')
        ? [join(dir, e.name)]
        : [],
  );
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'loraforge-st-'));
}

/** Builds a raw safetensors file from a header object and a data area, bypassing the writer's checks. */
function rawFile(
  dir: string,
  header: unknown,
  data = new Uint8Array(0),
  lengthOverride?: bigint,
): string {
  const json = Buffer.from(JSON.stringify(header));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  const path = join(dir, 'bad.safetensors');
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

function assertOneLineError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LoraforgeError, `expected LoraforgeError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), 'message must be one line');
    assert.match(err.message, pattern);
    return true;
  });
}

test('every golden safetensors file re-encodes byte-identically', () => {
  const files = goldenFiles(GOLDEN);
  assert.ok(files.length >= 10);
  const dir = tmp();
  try {
    for (const path of files) {
      const file = SafetensorsFile.open(path);
      const tensors: NamedTensorData[] = file
        .names()
        .map((name) => ({ ...file.info(name), data: file.read(name) }));
      const out = join(dir, 'copy.safetensors');
      writeSafetensors(out, tensors, { ...file.metadata });
      file.close();
      assert.deepEqual(readFileSync(out), readFileSync(path), path);
    }
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('golden model and forward batch read with expected dtypes and values', () => {
  const header = readSafetensorsHeader(join(GOLDEN, 'model.safetensors'));
  assert.equal(header.tensors.size, 26);
  assert.deepEqual(header.metadata, { format: 'pt' });
  assert.deepEqual(header.tensors.get('model.embed_tokens.weight')?.shape, [1000, 64]);

  const fwd = SafetensorsFile.open(join(GOLDEN, 'forward.safetensors'));
  assert.equal(fwd.info('input_ids').dtype, 'I64');
  const ids = bytesToI32('I64', fwd.read('input_ids'));
  const mask = bytesToI32('I64', fwd.read('attention_mask'));
  assert.equal(ids.length, 60);
  // Row 2 is right-padded from position 13 with id 0 / mask 0 (golden README).
  assert.deepEqual([...mask.subarray(40)], [...Array(13).fill(1), ...Array(7).fill(0)]);
  assert.ok(ids.subarray(0, 53).every((id) => id > 0 && id < 1000));
  const logits = bytesToF32('F32', fwd.read('logits'));
  assert.equal(logits.length, 3 * 20 * 1000);
  assert.ok(logits.every(Number.isFinite));
  const target = new Uint8Array(fwd.info('logits').byteLength);
  fwd.readInto('logits', target);
  assert.deepEqual(new Float32Array(target.buffer), logits);
  fwd.close();
});

test('folder view over a single file and over shards', () => {
  const dir = tmp();
  try {
    const single = openSafetensorsFolder(GOLDEN);
    const names = single.names().sort();
    const shard1 = names.slice(0, 10);
    const shard2 = names.slice(10);
    const shards = join(dir, 'sharded');
    mkdirSync(shards);
    const pick = (list: string[]) =>
      list.map((name) => ({ ...single.info(name), data: single.read(name) }));
    writeSafetensors(join(shards, 'model-00001-of-00002.safetensors'), pick(shard1));
    writeSafetensors(join(shards, 'model-00002-of-00002.safetensors'), pick(shard2));
    const weightMap = Object.fromEntries([
      ...shard1.map((n) => [n, 'model-00001-of-00002.safetensors']),
      ...shard2.map((n) => [n, 'model-00002-of-00002.safetensors']),
    ]);
    writeFileSync(
      join(shards, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );

    const sharded = openSafetensorsFolder(shards);
    assert.deepEqual(sharded.names().sort(), names);
    for (const name of names) assert.deepEqual(sharded.read(name), single.read(name));
    assertOneLineError(() => sharded.info('lm_head.weight'), /no tensor named 'lm_head.weight'/);
    sharded.close();
    single.close();

    assertOneLineError(() => openSafetensorsFolder(dir), /no model\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('malformed files each give one clear error line naming file and tensor', () => {
  const dir = tmp();
  try {
    const goodEntry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    const eight = new Uint8Array(8);

    writeFileSync(join(dir, 'short.safetensors'), new Uint8Array(5));
    assertOneLineError(
      () => readSafetensorsHeader(join(dir, 'short.safetensors')),
      /short\.safetensors.*shorter than the 8-byte/,
    );

    assertOneLineError(
      () => readSafetensorsHeader(rawFile(dir, { w: goodEntry }, eight, 1n << 40n)),
      /bad\.safetensors.*header length/,
    );
    assertOneLineError(
      () => readSafetensorsHeader(rawFile(dir, { w: goodEntry }, eight, 2n ** 64n - 1n)),
      /header length/,
    );

    const truncated = rawFile(dir, { w: goodEntry }, new Uint8Array(4));
    assertOneLineError(
      () => readSafetensorsHeader(truncated),
      /tensor 'w' data_offsets \[0,8\] lie outside the 4-byte data area/,
    );

    assertOneLineError(
      () =>
        readSafetensorsHeader(rawFile(dir, { w: { ...goodEntry, data_offsets: [4, 2] } }, eight)),
      /tensor 'w' data_offsets/,
    );
    assertOneLineError(
      () => readSafetensorsHeader(rawFile(dir, { w: { ...goodEntry, dtype: 'Q4_K' } }, eight)),
      /bad\.safetensors: tensor 'w' has unsupported dtype "Q4_K"/,
    );
    assertOneLineError(
      () =>
        readSafetensorsHeader(
          rawFile(dir, { w: { ...goodEntry, shape: [3] } }, new Uint8Array(16)),
        ),
      /tensor 'w' F32\[3\] needs 12 bytes but data_offsets span 8/,
    );
    assertOneLineError(
      () => readSafetensorsHeader(rawFile(dir, { w: { ...goodEntry, shape: [-2] } }, eight)),
      /tensor 'w' shape \[-2\]/,
    );
    assertOneLineError(
      () =>
        readSafetensorsHeader(
          rawFile(
            dir,
            { a: goodEntry, b: { ...goodEntry, data_offsets: [4, 12] } },
            new Uint8Array(16),
          ),
        ),
      /tensors 'a' and 'b' overlap/,
    );
    assertOneLineError(
      () => readSafetensorsHeader(rawFile(dir, { __metadata__: { n: 1 } }, eight)),
      /__metadata__\.n is not a string/,
    );

    const notJson = join(dir, 'nj.safetensors');
    writeFileSync(
      notJson,
      Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{{{{')]),
    );
    assertOneLineError(
      () => readSafetensorsHeader(notJson),
      /nj\.safetensors.*not valid UTF-8 JSON/,
    );

    assertOneLineError(
      () => readSafetensorsHeader(join(dir, 'missing.safetensors')),
      /missing\.safetensors: file not found/,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('writer accepts a record, sorts by dtype then name, and pads the header to 8 bytes', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'w.safetensors');
    writeSafetensors(path, {
      b: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
      a: { dtype: 'F32', shape: [2], data: new Float32Array([2, 3]) },
      ids: { dtype: 'I64', shape: [1], data: new BigInt64Array([7n]) },
      scalar: { dtype: 'BF16', shape: [], data: new Uint16Array([0x3f80]) },
    });
    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    assert.equal(headerLength % 8, 0);
    const json = bytes.subarray(8, 8 + headerLength).toString();
    assert.deepEqual(Object.keys(JSON.parse(json)), ['__metadata__', 'ids', 'a', 'b', 'scalar']);
    const file = SafetensorsFile.open(path);
    assert.deepEqual(bytesToF32('BF16', file.read('scalar')), new Float32Array([1]));
    assert.deepEqual(bytesToI32('I64', file.read('ids')), new Int32Array([7]));
    file.close();
    assert.throws(
      () =>
        writeSafetensors(path, [
          { name: 'x', dtype: 'F32', shape: [3], data: new Float32Array(2) },
        ]),
      /needs 12 bytes/,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('the streaming writer produces the same bytes, piece by piece, in the layout order', async () => {
  const dir = tmp();
  try {
    const tensors: NamedTensorData[] = [
      { name: 'w', dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      { name: 'h', dtype: 'BF16', shape: [3], data: new Uint16Array([0x3f80, 0x4000, 0x4040]) },
      { name: 'ids', dtype: 'I64', shape: [1], data: new BigInt64Array([7n]) },
    ];
    writeSafetensors(join(dir, 'whole.safetensors'), tensors);
    const produced: string[] = [];
    const streamed = join(dir, 'streamed.safetensors');
    await writeSafetensorsStreaming(
      streamed,
      tensors.map((t) => ({
        ...t,
        // Produced only when its turn comes, in two pieces where it has two elements or more.
        async *bytes() {
          produced.push(t.name);
          const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
          const half = (bytes.byteLength / 2) & ~1;
          yield bytes.subarray(0, half);
          yield bytes.subarray(half);
        },
      })),
    );
    assert.deepEqual(readFileSync(streamed), readFileSync(join(dir, 'whole.safetensors')));
    assert.deepEqual(produced, ['ids', 'w', 'h'], 'data follows the header in layout order');
    const short = join(dir, 'short.safetensors');
    await assert.rejects(
      writeSafetensorsStreaming(short, [
        { name: 'x', dtype: 'F32', shape: [3], bytes: () => [new Float32Array(2)] },
      ]),
      /'x' F32\[3\] needs 12 bytes, got 8/,
    );
    assert.deepEqual(readdirSync(dir).sort(), ['streamed.safetensors', 'whole.safetensors']);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('bf16 / f16 conversions round to nearest even and keep specials', () => {
  const values = new Float32Array([
    0,
    -0,
    1,
    -2.5,
    65504,
    1e-8,
    6.1e-5,
    3.14159,
    Infinity,
    -Infinity,
    1e6,
  ]);
  const bf = bf16ToF32(f32ToBf16(values));
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    assert.ok(
      Object.is(bf[i], v) || Math.abs(bf[i]! - v) <= Math.abs(v) * 2 ** -8,
      `bf16 ${v} -> ${bf[i]}`,
    );
  }
  // 1 + 2^-8 is exactly halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
  assert.equal(bf16ToF32(f32ToBf16(new Float32Array([1 + 2 ** -8])))[0], 1);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(new Float32Array([NaN])))[0]));

  const half = f16ToF32(f32ToF16(values));
  assert.deepEqual([...half.slice(0, 5)], [0, -0, 1, -2.5, 65504]);
  assert.equal(half[5], 0); // below half the smallest subnormal
  assert.ok(Math.abs(half[6]! - 6.1e-5) < 2 ** -24);
  assert.ok(Math.abs(half[7]! - 3.14159) < 2 ** -9);
  assert.deepEqual([...half.slice(8)], [Infinity, -Infinity, Infinity]);
  assert.equal(f32ToF16(new Float32Array([1 + 2 ** -11]))[0], 0x3c00); // tie to even
  assert.equal(f32ToF16(new Float32Array([2 ** -24]))[0], 1); // smallest subnormal
  // Every finite half value survives f16 -> f32 -> f16.
  const all = new Uint16Array(65536).map((_, i) => i).filter((h) => (h & 0x7c00) !== 0x7c00);
  assert.deepEqual(f32ToF16(f16ToF32(all)), all);
});

test('i64ToI32 narrows and rejects out-of-range values', () => {
  assert.deepEqual(
    i64ToI32(new BigInt64Array([-100n, 0n, 151645n])),
    new Int32Array([-100, 0, 151645]),
  );
  assertOneLineError(
    () => i64ToI32(new BigInt64Array([1n << 40n]), 'input_ids'),
    /input_ids: value 1099511627776 at index 0/,
  );
});

test('bytes in memory read like the file they came from, with the same header checks', () => {
  const path = join(GOLDEN, 'model.safetensors');
  const bytes = readFileSync(path);
  const file = SafetensorsFile.open(path);
  const memory = new SafetensorsBuffer(bytes, 'model.safetensors');
  try {
    assert.deepEqual(memory.names(), file.names());
    for (const name of file.names()) assert.deepEqual(memory.read(name), file.read(name));
  } finally {
    file.close();
  }
  assertOneLineError(
    () => new SafetensorsBuffer(bytes.subarray(0, 5), 'cut.safetensors'),
    /cut\.safetensors.*shorter than the 8-byte/,
  );
  assertOneLineError(
    () => new SafetensorsBuffer(bytes.subarray(0, bytes.byteLength - 4), 'cut.safetensors'),
    /cut\.safetensors.*lie outside the \d+-byte data area/,
  );
});
