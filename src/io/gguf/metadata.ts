/** Encoding of GGUF metadata and tensor infos into bytes (the part of the file before the data). */
import {
  GGUF_MAGIC,
  GGUF_VALUE_TYPES,
  GGUF_VERSION,
  SCALAR_BYTES,
  type GgufMetadata,
  type GgufScalar,
  type GgufScalarType,
} from './format.ts';

/** Appends little-endian fields to a growing byte buffer. */
export class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    bigger.set(this.buf.subarray(0, this.length));
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }

  u64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }

  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }

  scalar(type: GgufScalarType, value: GgufScalar, key: string): void {
    if (type === 'string') {
      if (typeof value !== 'string') throw new TypeError(`GGUF "${key}": expected a string`);
      this.string(value);
      return;
    }
    const size = SCALAR_BYTES[type];
    this.reserve(size);
    const v = this.view;
    const at = this.length;
    const num = () => {
      if (typeof value !== 'number' || !Number.isFinite(value))
        throw new TypeError(`GGUF "${key}": expected a finite number for ${type}, got ${value}`);
      return value;
    };
    const int = (lo: number, hi: number) => {
      const n = num();
      if (!Number.isInteger(n) || n < lo || n > hi)
        throw new RangeError(`GGUF "${key}": ${n} is not a ${type}`);
      return n;
    };
    switch (type) {
      case 'u8':
        v.setUint8(at, int(0, 0xff));
        break;
      case 'i8':
        v.setInt8(at, int(-0x80, 0x7f));
        break;
      case 'u16':
        v.setUint16(at, int(0, 0xffff), true);
        break;
      case 'i16':
        v.setInt16(at, int(-0x8000, 0x7fff), true);
        break;
      case 'u32':
        v.setUint32(at, int(0, 0xffffffff), true);
        break;
      case 'i32':
        v.setInt32(at, int(-0x80000000, 0x7fffffff), true);
        break;
      case 'f32':
        v.setFloat32(at, num(), true);
        break;
      case 'f64':
        v.setFloat64(at, num(), true);
        break;
      case 'bool':
        if (typeof value !== 'boolean') throw new TypeError(`GGUF "${key}": expected a boolean`);
        v.setUint8(at, value ? 1 : 0);
        break;
      case 'u64':
        v.setBigUint64(at, BigInt(value as number | bigint), true);
        break;
      case 'i64':
        v.setBigInt64(at, BigInt(value as number | bigint), true);
        break;
    }
    this.length += size;
  }

  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    this.bytes(new Uint8Array(pad));
  }

  take(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

export interface GgufTensorInfo {
  name: string;
  /** Row-major shape as in PyTorch / safetensors (outermost first); GGUF stores it reversed. */
  shape: readonly number[];
  typeId: number;
  /** Byte offset from the start of the data section. */
  offset: number;
}

/** Header + metadata + tensor infos, padded so that the data section starts aligned. */
export function encodeGgufHeader(
  metadata: GgufMetadata,
  tensors: readonly GgufTensorInfo[],
  alignment: number,
): Uint8Array {
  const out = new ByteSink();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.size);
  for (const [key, value] of metadata) {
    out.string(key);
    out.u32(GGUF_VALUE_TYPES[value.type]);
    if (value.type === 'array') {
      out.u32(GGUF_VALUE_TYPES[value.itemType]);
      out.u64(value.values.length);
      for (const item of value.values) out.scalar(value.itemType, item, key);
    } else {
      out.scalar(value.type, value.value, key);
    }
  }
  for (const t of tensors) {
    out.string(t.name);
    out.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) out.u64(t.shape[i]!);
    out.u32(t.typeId);
    out.u64(t.offset);
  }
  out.padTo(alignment);
  return out.take();
}
