/**
 * The safetensors format without any file system (https://github.com/huggingface/safetensors):
 * `u64 LE header length | JSON header | raw little-endian tensor bytes`. The header is validated
 * whole before any tensor data is touched; `SafetensorsReader` serves named tensors over any
 * positional byte reader, so a file on disk (safetensors.ts) and bytes already in memory
 * (safetensors-buffer.ts, e.g. a fetch() in a browser) share one set of checks.
 */
import { LoraforgeError } from '../util/errors.ts';
import { bf16ToF32, f16ToF32 } from '../engine/half.ts';

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

/** Headers beyond this are certainly corrupt (real ones are a few hundred KB at most). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * The largest tensor loraforge reads: the CPU engine's whole memory is 4 GiB (wasm32) and one
 * read(2) moves at most 2 GiB, so a bigger tensor can only end in an allocation failure.
 */
export const MAX_TENSOR_BYTES = 2 ** 31 - 1;

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

/** Fills `target` with the bytes at `position`; returns how many there were (fewer at the end). */
export type ReadAt = (target: Uint8Array, position: number) => number;

/** Parses and fully validates the header of a `fileSize`-byte safetensors file named `path`. */
export function parseSafetensorsHeader(
  path: string,
  fileSize: number,
  readAt: ReadAt,
): SafetensorsHeader {
  if (fileSize < 8)
    throw corrupt(path, `${fileSize} bytes is shorter than the 8-byte header length`);
  const lengthBytes = new Uint8Array(8);
  readAt(lengthBytes, 0);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8))) {
    throw corrupt(
      path,
      `header length ${headerLength} exceeds the file size ${fileSize} or the 100 MB limit`,
    );
  }
  const headerBytes = new Uint8Array(Number(headerLength));
  readAt(headerBytes, 8);
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

/** Read access to named tensors, from one file, a sharded folder or bytes in memory. */
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

/** Named tensors of one safetensors file, over a positional reader of its bytes. */
export abstract class SafetensorsReader implements TensorSource {
  /** Subclasses parse the header with `parseSafetensorsHeader` before they call this. */
  protected constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
  ) {}

  /** Copies the bytes at `position` into `target`; returns how many were available. */
  protected abstract readAt(target: Uint8Array, position: number): number;

  abstract close(): void;

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
    const target = new Uint8Array(this.loadableInfo(name).byteLength);
    this.readInto(name, target);
    return target;
  }

  /** info(name), refusing a tensor too big to load before anything is allocated for it. */
  private loadableInfo(name: string): TensorInfo {
    const info = this.info(name);
    if (info.byteLength > MAX_TENSOR_BYTES) {
      throw new LoraforgeError(
        `${this.path}: tensor '${name}' ${info.dtype}${JSON.stringify(info.shape)} has ${info.byteLength} bytes, more than the 2 GiB loraforge can load as one tensor`,
        'this model is too large for loraforge',
      );
    }
    return info;
  }

  /** Copies `target.byteLength` bytes of the tensor's data from byte `start` on (a piece of it). */
  readSlice(name: string, start: number, target: Uint8Array): void {
    const info = this.info(name);
    if (start < 0 || start + target.byteLength > info.byteLength) {
      throw new Error(
        `readSlice '${name}': bytes ${start}..${start + target.byteLength} outside its ${info.byteLength}`,
      );
    }
    if (this.readAt(target, info.fileOffset + start) !== target.byteLength) {
      throw corrupt(this.path, `tensor '${name}' data ends early`);
    }
  }

  readInto(name: string, target: Uint8Array): void {
    const info = this.loadableInfo(name);
    if (target.byteLength !== info.byteLength) {
      throw new Error(
        `readInto '${name}': target has ${target.byteLength} bytes, tensor has ${info.byteLength}`,
      );
    }
    // The header check guarantees the bytes exist unless the file shrank while open.
    if (this.readAt(target, info.fileOffset) !== info.byteLength) {
      throw corrupt(this.path, `tensor '${name}' data ends early`);
    }
  }
}

// ---- dtype conversion helpers ----

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

export interface TensorData {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Little-endian element bytes; any typed array or DataView whose byteLength matches. */
  data: ArrayBufferView;
}

export interface NamedTensorData extends TensorData {
  name: string;
}

/** A tensor's name, dtype and shape: all a safetensors header says about it. */
export interface TensorLayout {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

/**
 * The header bytes of a safetensors file holding `tensors` (length prefix and JSON) and the order
 * their data follows it in: by the Rust library's dtype rank, then by name. Known before any
 * tensor data, so a writer can stream the data after it (writeSafetensorsStreaming).
 */
export function safetensorsLayout<T extends TensorLayout>(
  tensors: readonly T[],
  metadata: Record<string, string> = { format: 'pt' },
): { header: Uint8Array; order: T[] } {
  const order = [...tensors].sort(
    (a, b) =>
      DTYPE_WRITE_RANK[b.dtype] - DTYPE_WRITE_RANK[a.dtype] ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const fields: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of order) {
    if (Object.hasOwn(fields, t.name))
      throw new Error(`writeSafetensors: duplicate tensor name '${t.name}'`);
    const bytes = tensorByteLength(t);
    fields[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const utf8 = new TextEncoder();
  const json = JSON.stringify(fields);
  // Padding the header with spaces to a multiple of 8 keeps the data area 8-byte aligned.
  const jsonBytes = utf8.encode(json + ' '.repeat((8 - (utf8.encode(json).byteLength % 8)) % 8));
  const header = new Uint8Array(8 + jsonBytes.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  header.set(jsonBytes, 8);
  return { header, order };
}

/** Bytes of a tensor's data. */
export function tensorByteLength(t: Pick<TensorLayout, 'dtype' | 'shape'>): number {
  return elementCount(t.shape) * DTYPE_BYTES[t.dtype];
}

/** Serializes tensors into the chunks of a safetensors file (header first, then data). */
export function encodeSafetensors(
  tensors: readonly NamedTensorData[] | Readonly<Record<string, TensorData>>,
  metadata: Record<string, string> = { format: 'pt' },
): Uint8Array[] {
  const list: NamedTensorData[] = Array.isArray(tensors)
    ? [...tensors]
    : Object.entries(tensors).map(([name, t]) => ({ name, ...t }));
  for (const t of list) {
    const expected = tensorByteLength(t);
    if (t.data.byteLength !== expected) {
      throw new Error(
        `writeSafetensors: '${t.name}' ${t.dtype}${JSON.stringify(t.shape)} needs ${expected} bytes, got ${t.data.byteLength}`,
      );
    }
  }
  const { header, order } = safetensorsLayout(list, metadata);
  return [
    header,
    ...order.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ];
}
