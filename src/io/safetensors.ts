/**
 * safetensors reading and writing (https://github.com/huggingface/safetensors format):
 * `u64 LE header length | JSON header | raw little-endian tensor bytes`.
 *
 * Reading validates the whole header before any tensor data is touched, and tensors are read one
 * at a time into fresh buffers, so loading a model never holds more than the final weights plus one
 * tensor in flight.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';
import { bf16ToF32, f16ToF32 } from '../engine/half.ts';
import { writeFileAtomic } from './atomic.ts';

export type SafetensorsDtype =
  'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/**
 * Position of each dtype in the Rust library's `Dtype` enum. Its writer lays tensors out by
 * descending enum position, then by name, and we do the same so files come out byte-identical.
 */
const DTYPE_WRITE_RANK: Readonly<Record<SafetensorsDtype, number>> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 3,
  F16: 4,
  BF16: 5,
  I32: 6,
  F32: 7,
  F64: 8,
  I64: 9,
};

/** Headers beyond this are certainly corrupt (real ones are a few hundred KB at most). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute byte offset of the tensor's data in the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  /** Byte offset where the data area starts (8 + header length). */
  readonly dataStart: number;
}

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_BYTES, value);
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function corrupt(path: string, what: string): LoraforgeError {
  return new LoraforgeError(
    `${path}: not a valid safetensors file (${what})`,
    'the file is truncated or corrupt; download or save it again',
  );
}

function readExactly(fd: number, target: Uint8Array, position: number): number {
  let done = 0;
  while (done < target.byteLength) {
    const n = readSync(fd, target, done, target.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function parseTensorEntry(
  path: string,
  name: string,
  entry: unknown,
  dataStart: number,
  dataSize: number,
): TensorInfo {
  const where = `tensor '${name}'`;
  if (typeof entry !== 'object' || entry === null)
    throw corrupt(path, `${where} entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isSafetensorsDtype(dtype)) {
    throw new LoraforgeError(
      `${path}: tensor '${name}' has unsupported dtype ${JSON.stringify(dtype)}`,
      `supported dtypes: ${Object.keys(DTYPE_BYTES).join(', ')}`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw corrupt(
      path,
      `${where} shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
    );
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1] ||
    offsets[1] > dataSize
  ) {
    throw corrupt(
      path,
      `${where} data_offsets ${JSON.stringify(offsets)} lie outside the ${dataSize}-byte data area`,
    );
  }
  const [begin, end] = offsets as number[];
  const expected = elementCount(shape) * DTYPE_BYTES[dtype];
  if (end - begin !== expected) {
    throw corrupt(
      path,
      `${where} ${dtype}${JSON.stringify(shape)} needs ${expected} bytes but data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype, shape, fileOffset: dataStart + begin, byteLength: expected };
}

function parseMetadata(path: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw corrupt(path, '__metadata__ is not an object');
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw corrupt(path, `__metadata__.${key} is not a string`);
  }
  return value as Record<string, string>;
}

function rejectOverlaps(path: string, tensors: TensorInfo[]): void {
  const sorted = tensors
    .filter((t) => t.byteLength > 0)
    .sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    if (sorted[i]!.fileOffset < prev.fileOffset + prev.byteLength) {
      throw corrupt(path, `tensors '${prev.name}' and '${sorted[i]!.name}' overlap`);
    }
  }
}

function readHeaderFromFd(fd: number, path: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8)
    throw corrupt(path, `${fileSize} bytes is shorter than the 8-byte header length`);
  const lengthBytes = new Uint8Array(8);
  readExactly(fd, lengthBytes, 0);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8))) {
    throw corrupt(
      path,
      `header length ${headerLength} exceeds the file size ${fileSize} or the 100 MB limit`,
    );
  }
  const headerBytes = new Uint8Array(Number(headerLength));
  readExactly(fd, headerBytes, 8);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch {
    throw corrupt(path, 'header is not valid UTF-8 JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw corrupt(path, 'header is not a JSON object');

  const dataStart = 8 + headerBytes.byteLength;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') metadata = parseMetadata(path, entry);
    else tensors.set(name, parseTensorEntry(path, name, entry, dataStart, fileSize - dataStart));
  }
  rejectOverlaps(path, [...tensors.values()]);
  return { tensors, metadata, dataStart };
}

/** Reads and fully validates a safetensors header without reading any tensor data. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openOrThrow(path);
  try {
    return readHeaderFromFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function openOrThrow(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new LoraforgeError(`${path}: file not found`);
    throw err;
  }
}

/** Read access to named tensors, from one file or a sharded folder. */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  /** Throws a LoraforgeError naming the tensor when it is absent. */
  info(name: string): TensorInfo;
  /** The tensor's raw bytes in a fresh, 8-byte-aligned buffer (safe to view as any typed array). */
  read(name: string): Uint8Array;
  /** Copies the tensor's raw bytes into `target` (exactly info(name).byteLength bytes). */
  readInto(name: string, target: Uint8Array): void;
  close(): void;
}

export class SafetensorsFile implements TensorSource {
  readonly header: SafetensorsHeader;
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    try {
      this.header = readHeaderFromFd(fd, path);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  static open(path: string): SafetensorsFile {
    return new SafetensorsFile(path, openOrThrow(path));
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new LoraforgeError(`${this.path}: no tensor named '${name}'`);
    return info;
  }

  read(name: string): Uint8Array {
    const target = new Uint8Array(this.info(name).byteLength);
    this.readInto(name, target);
    return target;
  }

  readInto(name: string, target: Uint8Array): void {
    const info = this.info(name);
    if (target.byteLength !== info.byteLength) {
      throw new Error(
        `readInto '${name}': target has ${target.byteLength} bytes, tensor has ${info.byteLength}`,
      );
    }
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    // The header check guarantees the bytes exist unless the file shrank while open.
    if (readExactly(this.fd, target, info.fileOffset) !== info.byteLength) {
      throw corrupt(this.path, `tensor '${name}' data ends early`);
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** One name → tensor view over the shards of a model folder. */
export class SafetensorsFolder implements TensorSource {
  private constructor(
    readonly dir: string,
    private readonly files: SafetensorsFile[],
    private readonly fileOf: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  /** Opens `model.safetensors`, or the shards listed by `model.safetensors.index.json`. */
  static open(dir: string): SafetensorsFolder {
    const single = join(dir, 'model.safetensors');
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(index)) return SafetensorsFolder.openSharded(dir, index);
    if (existsSync(single)) {
      const file = SafetensorsFile.open(single);
      return new SafetensorsFolder(dir, [file], new Map(file.names().map((n) => [n, file])));
    }
    throw new LoraforgeError(
      `${dir}: no model.safetensors or model.safetensors.index.json`,
      'only safetensors weights are supported; convert .bin checkpoints with transformers save_pretrained(safe_serialization=True)',
    );
  }

  private static openSharded(dir: string, indexPath: string): SafetensorsFolder {
    const weightMap = readWeightMap(indexPath);
    const byShard = new Map<string, SafetensorsFile>();
    const fileOf = new Map<string, SafetensorsFile>();
    try {
      for (const [tensor, shard] of Object.entries(weightMap)) {
        let file = byShard.get(shard);
        if (!file) {
          file = SafetensorsFile.open(join(dir, shard));
          byShard.set(shard, file);
        }
        if (!file.has(tensor))
          throw new LoraforgeError(
            `${indexPath}: tensor '${tensor}' is mapped to ${shard}, which does not contain it`,
          );
        fileOf.set(tensor, file);
      }
    } catch (err) {
      for (const file of byShard.values()) file.close();
      throw err;
    }
    return new SafetensorsFolder(dir, [...byShard.values()], fileOf);
  }

  names(): string[] {
    return [...this.fileOf.keys()];
  }

  has(name: string): boolean {
    return this.fileOf.has(name);
  }

  private fileFor(name: string): SafetensorsFile {
    const file = this.fileOf.get(name);
    if (!file)
      throw new LoraforgeError(`${this.dir}: no tensor named '${name}' in the model weights`);
    return file;
  }

  info(name: string): TensorInfo {
    return this.fileFor(name).info(name);
  }

  read(name: string): Uint8Array {
    return this.fileFor(name).read(name);
  }

  readInto(name: string, target: Uint8Array): void {
    this.fileFor(name).readInto(name, target);
  }

  close(): void {
    for (const file of this.files) file.close();
  }
}

/** Shards sit next to their index; anything path-like could point outside the model folder. */
const SHARD_FILE_NAME = /^[\w.-]+\.safetensors$/;

/** Reads `weight_map` (tensor name → shard file name) from a `model.safetensors.index.json`. */
export function readWeightMap(indexPath: string): Record<string, string> {
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch {
    throw new LoraforgeError(`${indexPath}: not valid JSON`, 'download the model again');
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (
    typeof weightMap !== 'object' ||
    weightMap === null ||
    !Object.values(weightMap).every((v) => typeof v === 'string' && SHARD_FILE_NAME.test(v))
  ) {
    throw new LoraforgeError(
      `${indexPath}: missing or invalid "weight_map" (tensor name → shard file name)`,
    );
  }
  return weightMap as Record<string, string>;
}

export function openSafetensorsFolder(dir: string): SafetensorsFolder {
  return SafetensorsFolder.open(dir);
}

export interface TensorData {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Little-endian element bytes; any typed array or DataView whose byteLength matches. */
  data: ArrayBufferView;
}

export interface NamedTensorData extends TensorData {
  name: string;
}

/** Serializes tensors into the chunks of a safetensors file (header first, then data). */
export function encodeSafetensors(
  tensors: readonly NamedTensorData[] | Readonly<Record<string, TensorData>>,
  metadata: Record<string, string> = { format: 'pt' },
): Uint8Array[] {
  const list: NamedTensorData[] = Array.isArray(tensors)
    ? [...tensors]
    : Object.entries(tensors).map(([name, t]) => ({ name, ...t }));
  list.sort(
    (a, b) =>
      DTYPE_WRITE_RANK[b.dtype] - DTYPE_WRITE_RANK[a.dtype] ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );

  const header: Record<string, unknown> = { __metadata__: metadata };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of list) {
    if (Object.hasOwn(header, t.name))
      throw new Error(`writeSafetensors: duplicate tensor name '${t.name}'`);
    const expected = elementCount(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new Error(
        `writeSafetensors: '${t.name}' ${t.dtype}${JSON.stringify(t.shape)} needs ${expected} bytes, got ${t.data.byteLength}`,
      );
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    chunks.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    offset += expected;
  }
  const json = JSON.stringify(header);
  // Padding the header with spaces to a multiple of 8 keeps the data area 8-byte aligned.
  const jsonBytes = Buffer.from(json + ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8), 'utf8');
  const lengthBytes = new Uint8Array(8);
  new DataView(lengthBytes.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  return [lengthBytes, jsonBytes, ...chunks];
}

/** Writes a safetensors file atomically (default metadata `{format: 'pt'}`, as PyTorch code expects). */
export function writeSafetensors(
  path: string,
  tensors: readonly NamedTensorData[] | Readonly<Record<string, TensorData>>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

// ---- dtype conversion helpers ----

export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../engine/half.ts';

/** Narrows I64 values (token ids, masks, labels) to I32; throws if one does not fit. */
export function i64ToI32(src: BigInt64Array, what = 'I64 tensor'): Int32Array {
  const out = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    if (v < -2147483648n || v > 2147483647n)
      throw new LoraforgeError(`${what}: value ${v} at index ${i} does not fit in int32`);
    out[i] = Number(v);
  }
  return out;
}

/**
 * Widens a tensor's raw bytes (F32, BF16, F16 or F64) to float32. F32 input is viewed in place
 * (no copy) when 8-byte aligned, so the result shares memory with `bytes`.
 */
export function bytesToF32(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  what = 'tensor',
): Float32Array {
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset, byteLength } = aligned;
  switch (dtype) {
    case 'F32':
      return new Float32Array(buffer, byteOffset, byteLength / 4);
    case 'BF16':
      return bf16ToF32(new Uint16Array(buffer, byteOffset, byteLength / 2));
    case 'F16':
      return f16ToF32(new Uint16Array(buffer, byteOffset, byteLength / 2));
    case 'F64':
      return Float32Array.from(new Float64Array(buffer, byteOffset, byteLength / 8));
    default:
      throw new LoraforgeError(`${what}: expected a floating-point dtype, found ${dtype}`);
  }
}

/** Reads a tensor's raw bytes (I64, I32, I16, I8, U8 or BOOL) as int32; I32 input is viewed in place. */
export function bytesToI32(
  dtype: SafetensorsDtype,
  bytes: Uint8Array,
  what = 'tensor',
): Int32Array {
  const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset, byteLength } = aligned;
  switch (dtype) {
    case 'I64':
      return i64ToI32(new BigInt64Array(buffer, byteOffset, byteLength / 8), what);
    case 'I32':
      return new Int32Array(buffer, byteOffset, byteLength / 4);
    case 'I16':
      return Int32Array.from(new Int16Array(buffer, byteOffset, byteLength / 2));
    case 'I8':
      return Int32Array.from(new Int8Array(buffer, byteOffset, byteLength));
    case 'U8':
    case 'BOOL':
      return Int32Array.from(new Uint8Array(buffer, byteOffset, byteLength));
    default:
      throw new LoraforgeError(`${what}: expected an integer dtype, found ${dtype}`);
  }
}
