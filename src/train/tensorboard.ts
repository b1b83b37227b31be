/**
 * `report_to: tensorboard`: training metrics as TensorBoard event files, written by the project
 * (no TensorFlow). An event file is a TFRecord stream: each record is
 *
 *     uint64 length (LE) | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)
 *
 * and each record's data is an `Event` protobuf (tensorflow/core/util/event.proto):
 * `wall_time` (1, double), `step` (2, int64), `file_version` (3, string) in the first event,
 * `summary` (5, Summary); a `Summary` holds `value` (1) entries of `tag` (1, string) and
 * `simple_value` (2, float), which TensorBoard shows as scalar charts. Tags follow HF's
 * TensorBoardCallback (train/loss, train/learning_rate, eval/loss, ...).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { MetricsRecord } from './metrics.ts';

// ---- CRC-32C (Castagnoli), as TFRecord framing uses it ----

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC32C_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord stores CRCs rotated and offset, so that a CRC of data containing CRCs stays strong. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

// ---- the few protobuf encodings an Event needs ----

function varint(value: number | bigint): number[] {
  let v = BigInt(value);
  const bytes: number[] = [];
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return bytes;
}

const LENGTH_DELIMITED = 2;
const key = (field: number, wireType: number) => varint((field << 3) | wireType);

function lengthDelimited(field: number, bytes: Uint8Array | number[]): number[] {
  return [...key(field, LENGTH_DELIMITED), ...varint(bytes.length), ...bytes];
}

function fixed(field: number, value: number, kind: 'double' | 'float'): number[] {
  const buffer = new DataView(new ArrayBuffer(kind === 'double' ? 8 : 4));
  if (kind === 'double') buffer.setFloat64(0, value, true);
  else buffer.setFloat32(0, value, true);
  // Wire type 1 is 64-bit fixed, 5 is 32-bit fixed.
  return [...key(field, kind === 'double' ? 1 : 5), ...new Uint8Array(buffer.buffer)];
}

const utf8 = (text: string) => new TextEncoder().encode(text);

export function encodeEvent(event: {
  wallTime: number;
  step?: number;
  fileVersion?: string;
  scalars?: Record<string, number>;
}): Uint8Array {
  const bytes = fixed(1, event.wallTime, 'double');
  if (event.step !== undefined) bytes.push(...key(2, 0), ...varint(event.step));
  if (event.fileVersion !== undefined) bytes.push(...lengthDelimited(3, utf8(event.fileVersion)));
  if (event.scalars) {
    const values = Object.entries(event.scalars).flatMap(([tag, value]) =>
      lengthDelimited(1, [...lengthDelimited(1, utf8(tag)), ...fixed(2, value, 'float')]),
    );
    bytes.push(...lengthDelimited(5, values));
  }
  return Uint8Array.from(bytes);
}

/** HF TensorBoardCallback's tag for each metrics field ("train/" + name; eval_x → "eval/x"). */
const TAGS: Record<string, string> = {
  loss: 'train/loss',
  lr: 'train/learning_rate',
  grad_norm: 'train/grad_norm',
  epoch: 'train/epoch',
  tokens_per_s: 'train/tokens_per_second',
  eval_loss: 'eval/loss',
  eval_ppl: 'eval/perplexity',
};

/**
 * Appends one event per metrics record to `<logDir>/events.out.tfevents.<time>.<host>`. Nothing
 * is created before the first record, so a run refused at start leaves no folder behind.
 */
export class TensorBoardWriter {
  readonly path: string;
  private opened = false;

  constructor(
    private readonly logDir: string,
    private readonly now = Date.now(),
  ) {
    this.path = join(logDir, `events.out.tfevents.${Math.floor(now / 1000)}.${hostname()}`);
  }

  write(record: MetricsRecord): void {
    const scalars: Record<string, number> = {};
    for (const [field, tag] of Object.entries(TAGS)) {
      const value = record[field];
      if (typeof value === 'number' && Number.isFinite(value)) scalars[tag] = value;
    }
    if (Object.keys(scalars).length === 0) return;
    if (!this.opened) {
      mkdirSync(this.logDir, { recursive: true });
      // TensorBoard identifies the format by the first event's file_version.
      const version = encodeEvent({ wallTime: this.now / 1000, fileVersion: 'brain.Event:2' });
      appendFileSync(this.path, tfRecord(version));
      this.opened = true;
    }
    const wallTime = record.time ? Date.parse(record.time) / 1000 : Date.now() / 1000;
    appendFileSync(this.path, tfRecord(encodeEvent({ wallTime, step: record.step, scalars })));
  }
}

/** HF's default logging_dir: `<output_dir>/runs/<date>_<host>`, one folder per run. */
export function defaultLoggingDir(outputDir: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return join(outputDir, 'runs', `${stamp}_${hostname()}`);
}
