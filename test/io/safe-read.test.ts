/** Untrusted files: only regular files of bounded size, confined where asked, never quoted. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
  openSync,
  closeSync,
  ftruncateSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readJsonObject, readJsonObjectAsync } from '../../src/io/hf-folder.ts';
import {
  decodeUtf8,
  firstInvalidUtf8,
  readChecked,
  readCheckedAsync,
} from '../../src/io/safe-read.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { readRecords } from '../../src/data/record-file.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

const root = realpathSync(mkdtempSync(join(tmpdir(), 'lf-safe-read-')));
const userError = (pattern: RegExp) => (err: Error) =>
  err instanceof LoraforgeError && pattern.test(err.message);

test('a FIFO, a device and a folder are refused at once, sync and async (no hang)', async () => {
  const fifo = join(root, 'adapter_config.json');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const zero = join(root, 'zero.json');
  symlinkSync('/dev/zero', zero);
  const folder = join(root, 'config.json');
  mkdirSync(folder);
  for (const [path, kind] of [
    [fifo, /is a FIFO/],
    [zero, /is a device/],
    [folder, /is a folder/],
  ] as const) {
    assert.throws(() => readJsonObject(path), userError(kind));
    await assert.rejects(readJsonObjectAsync(path), userError(kind));
    assert.throws(() => SafetensorsFile.open(path), userError(kind));
  }
});

test('a file above the size cap is refused before it is read', async () => {
  const big = join(root, 'big.json');
  writeFileSync(big, 'x'.repeat(2000));
  assert.throws(() => readChecked(big, { maxBytes: 1000 }), userError(/more than the 1000 B/));
  await assert.rejects(readCheckedAsync(big, { maxBytes: 1000 }), userError(/more than/));
});

test('a symlink leaving the confining folder is refused; one inside it is fine', async () => {
  const inside = join(root, 'confined');
  mkdirSync(inside);
  writeFileSync(join(inside, 'real.json'), '{}');
  symlinkSync(join(inside, 'real.json'), join(inside, 'ok.json'));
  symlinkSync('/etc/passwd', join(inside, 'escape.json'));
  assert.deepEqual(readJsonObject(join(inside, 'ok.json'), { within: inside }), {});
  assert.throws(
    () => readJsonObject(join(inside, 'escape.json'), { within: inside }),
    userError(/links outside the folder/),
  );
  await assert.rejects(
    readCheckedAsync(join(inside, 'escape.json'), { maxBytes: 1e6, within: inside }),
    userError(/links outside/),
  );
});

test('a JSON error names line and column but never quotes the file', () => {
  const secret = join(root, 'secret.json');
  writeFileSync(secret, 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1\n');
  assert.throws(
    () => readJsonObject(secret),
    (err: Error) =>
      err instanceof LoraforgeError &&
      /invalid JSON at line 1, column 1/.test(err.message) &&
      !/root:x|bash|daemon/.test(err.message),
  );
});

test('invalid UTF-8 is refused with the file and byte offset', async () => {
  const bytes = Buffer.concat([
    Buffer.from('[{"instruction": "héllo", "output": "'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('"}]'),
  ]);
  const file = join(root, 'latin1.json');
  writeFileSync(file, bytes);
  await assert.rejects(readRecords(file), userError(/latin1\.json: invalid UTF-8 at byte 38/));
  assert.throws(() => decodeUtf8(new Uint8Array([0x61, 0xe4, 0xb8]), 'x'), userError(/byte 1/));
});

test('firstInvalidUtf8 agrees with the strict TextDecoder on random bytes', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const strict = new TextDecoder('utf-8', { fatal: true });
  for (let n = 0; n < 3000; n++) {
    const bytes = Uint8Array.from({ length: 1 + (n % 9) }, () =>
      n % 3 === 0
        ? rand()
        : [0x41, 0xc3, 0xa9, 0xe4, 0xb8, 0xad, 0xf0, 0x9f, 0x98, 0x80, 0xed, 0xa0][rand() % 12]!,
    );
    let valid = true;
    try {
      strict.decode(bytes);
    } catch {
      valid = false;
    }
    assert.equal(firstInvalidUtf8(bytes) === -1, valid, Buffer.from(bytes).toString('hex'));
  }
});

test('a tensor over 2 GiB in a header is a clear error, before any allocation', () => {
  const path = join(root, 'huge.safetensors');
  const header = Buffer.from(
    JSON.stringify({ w: { dtype: 'U8', shape: [3 * 2 ** 30], data_offsets: [0, 3 * 2 ** 30] } }),
  );
  const fd = openSync(path, 'w');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  writeSync(fd, length);
  writeSync(fd, header);
  ftruncateSync(fd, 8 + header.length + 3 * 2 ** 30); // sparse: no disk space used
  closeSync(fd);
  const file = SafetensorsFile.open(path);
  assert.throws(() => file.read('w'), userError(/tensor 'w' .* more than the 2 GiB/));
  file.close();
});
