/**
 * TensorBoard event files: the CRC against a published CRC-32C check value, and a training run
 * through the real bin whose event file is decoded here by a reader written independently of the
 * writer (TFRecord framing with both CRCs checked, Event / Summary protobuf fields by number).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { crc32c, maskedCrc32c } from '../../src/train/tensorboard.ts';
import { readMetrics } from '../../src/train/metrics.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const root = mkdtempSync(join(tmpdir(), 'lf-tb-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('crc32c matches the standard check value (RFC 3720: "123456789" -> 0xE3069283)', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  // An all-zero 32-byte block, RFC 3720 B.4.
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
});

// ---- an independent reader ----

interface Field {
  field: number;
  wire: number;
  value: bigint | Uint8Array;
}

function readVarint(bytes: Uint8Array, at: number): [bigint, number] {
  let value = 0n;
  for (let shift = 0n; ; shift += 7n) {
    const byte = bytes[at++]!;
    value |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return [value, at];
  }
}

function fields(bytes: Uint8Array): Field[] {
  const out: Field[] = [];
  for (let at = 0; at < bytes.length;) {
    const [tag, next] = readVarint(bytes, at);
    at = next;
    const field = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, n] = readVarint(bytes, at);
      out.push({ field, wire, value: v });
      at = n;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      out.push({ field, wire, value: bytes.slice(at, at + size) });
      at += size;
    } else if (wire === 2) {
      const [length, n] = readVarint(bytes, at);
      out.push({ field, wire, value: bytes.slice(n, n + Number(length)) });
      at = n + Number(length);
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: Map<string, number>;
}

function readEvents(file: Uint8Array): DecodedEvent[] {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const events: DecodedEvent[] = [];
  for (let at = 0; at < file.length;) {
    const length = Number(view.getBigUint64(at, true));
    assert.equal(
      view.getUint32(at + 8, true),
      maskedCrc32c(file.subarray(at, at + 8)),
      'length crc',
    );
    const data = file.subarray(at + 12, at + 12 + length);
    assert.equal(view.getUint32(at + 12 + length, true), maskedCrc32c(data), 'data crc');
    at += 12 + length + 4;
    const event: DecodedEvent = { wallTime: NaN, step: 0, scalars: new Map() };
    for (const f of fields(data)) {
      const bytes = f.value as Uint8Array;
      if (f.field === 1) event.wallTime = new DataView(bytes.buffer).getFloat64(0, true);
      if (f.field === 2) event.step = Number(f.value as bigint);
      if (f.field === 3) event.fileVersion = new TextDecoder().decode(bytes);
      if (f.field === 5) {
        for (const value of fields(bytes).filter((v) => v.field === 1)) {
          const parts = fields(value.value as Uint8Array);
          const tag = new TextDecoder().decode(
            parts.find((p) => p.field === 1)!.value as Uint8Array,
          );
          const raw = parts.find((p) => p.field === 2 && p.wire === 5)!.value as Uint8Array;
          event.scalars.set(tag, new DataView(raw.buffer).getFloat32(0, true));
        }
      }
    }
    events.push(event);
  }
  return events;
}

test('train --report-to tensorboard writes scalar events; eval loss and the device are printed', () => {
  const out = join(root, 'run');
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bin', 'loraforge.js'),
      'train',
      '--model',
      join(ROOT, 'assets', 'tiny-chat'),
      '--dataset',
      join(ROOT, 'examples', 'identity.json'),
      '--set',
      'name=小李,author=小张',
      '--output-dir',
      out,
      '--max-steps',
      '4',
      '--logging-steps',
      '1',
      '--eval-steps',
      '2',
      '--threads',
      '1',
      '--report-to',
      'tensorboard',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const printed = r.stdout + r.stderr;
  assert.match(printed, /device: cpu \((?:native|wasm) [^,]+, 1 thread\)/);
  assert.match(printed, /eval 2\/4 +eval_loss \d+\.\d{4} +eval_ppl \d+\.\d{3}/);
  assert.match(printed, /eval 4\/4 +eval_loss/);

  const [runDir] = readdirSync(join(out, 'runs'));
  const [eventFile] = readdirSync(join(out, 'runs', runDir!));
  assert.match(eventFile!, /^events\.out\.tfevents\.\d+\./);
  const events = readEvents(new Uint8Array(readFileSync(join(out, 'runs', runDir!, eventFile!))));
  assert.equal(events[0]!.fileVersion, 'brain.Event:2');
  const metrics = readMetrics(join(out, 'metrics.jsonl'));
  const series = (tag: string) =>
    events.filter((e) => e.scalars.has(tag)).map((e) => [e.step, e.scalars.get(tag)]);
  const f32 = (x: number) => Math.fround(x);
  assert.deepEqual(
    series('train/loss'),
    metrics.filter((m) => m.loss !== undefined).map((m) => [m.step, f32(m.loss!)]),
  );
  assert.deepEqual(
    series('eval/loss'),
    metrics.filter((m) => m.eval_loss !== undefined).map((m) => [m.step, f32(m.eval_loss!)]),
  );
  assert.deepEqual(
    series('train/learning_rate').map(([step]) => step),
    [1, 2, 3, 4],
  );
  for (const event of events) assert.ok(Math.abs(event.wallTime - Date.now() / 1000) < 600);
});
