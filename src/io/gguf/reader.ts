/**
 * GGUF reader over a file's bytes: metadata, tensor infos and each tensor decoded to f32. Used by
 * tests and checks (it loads the whole file, which is fine for the small files they read).
 */
import { readFileSync } from 'node:fs';
import { LoraforgeError } from '../../util/errors.ts';
import {
  alignUp,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VALUE_TYPES,
  type GgufMetadata,
  type GgufScalar,
  type GgufScalarType,
  type GgufValue,
} from './format.ts';
import { type GgmlType, ggmlTypeById, tensorBytes } from './ggml-types.ts';

const TYPE_NAMES = Object.fromEntries(
  Object.entries(GGUF_VALUE_TYPES).map(([name, id]) => [id, name]),
) as Record<number, keyof typeof GGUF_VALUE_TYPES>;

export interface GgufTensorEntry {
  name: string;
  /** Row-major shape (outermost first). */
  shape: number[];
  type: GgmlType;
  /** Absolute byte offset in the file. */
  start: number;
  byteLength: number;
}

class Cursor {
  private readonly view: DataView;
  pos = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly where: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): number {
    if (this.pos + n > this.bytes.length) {
      throw new LoraforgeError(`${this.where}: truncated GGUF (needs byte ${this.pos + n})`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u32(): number {
    return this.view.getUint32(this.need(4), true);
  }
  u64(): number {
    return Number(this.view.getBigUint64(this.need(8), true));
  }
  string(): string {
    const n = this.u64();
    const at = this.need(n);
    return Buffer.from(this.bytes.subarray(at, at + n)).toString('utf8');
  }
  scalar(type: GgufScalarType): GgufScalar {
    const v = this.view;
    switch (type) {
      case 'u8':
        return v.getUint8(this.need(1));
      case 'i8':
        return v.getInt8(this.need(1));
      case 'bool':
        return v.getUint8(this.need(1)) !== 0;
      case 'u16':
        return v.getUint16(this.need(2), true);
      case 'i16':
        return v.getInt16(this.need(2), true);
      case 'u32':
        return v.getUint32(this.need(4), true);
      case 'i32':
        return v.getInt32(this.need(4), true);
      case 'f32':
        return v.getFloat32(this.need(4), true);
      case 'f64':
        return v.getFloat64(this.need(8), true);
      case 'u64':
        return v.getBigUint64(this.need(8), true);
      case 'i64':
        return v.getBigInt64(this.need(8), true);
      case 'string':
        return this.string();
    }
  }
  valueType(key: string): keyof typeof GGUF_VALUE_TYPES {
    const id = this.u32();
    const name = TYPE_NAMES[id];
    if (!name) throw new LoraforgeError(`${this.where}: "${key}" has unknown value type ${id}`);
    return name;
  }
}

export class GgufReader {
  readonly metadata: GgufMetadata = new Map();
  readonly tensors: GgufTensorEntry[] = [];
  readonly version: number;

  constructor(
    private readonly bytes: Uint8Array,
    readonly where = 'GGUF',
  ) {
    const c = new Cursor(bytes, where);
    if (c.u32() !== GGUF_MAGIC) throw new LoraforgeError(`${where}: not a GGUF file`);
    this.version = c.u32();
    const tensorCount = c.u64();
    const kvCount = c.u64();
    for (let i = 0; i < kvCount; i++) {
      const key = c.string();
      const type = c.valueType(key);
      let value: GgufValue;
      if (type === 'array') {
        const itemType = c.valueType(key);
        if (itemType === 'array') throw new LoraforgeError(`${where}: "${key}": nested arrays`);
        const n = c.u64();
        const values: GgufScalar[] = [];
        for (let j = 0; j < n; j++) values.push(c.scalar(itemType));
        value = { type, itemType, values };
      } else {
        value = { type, value: c.scalar(type) };
      }
      this.metadata.set(key, value);
    }
    const alignment = Number(this.scalar('general.alignment') ?? GGUF_DEFAULT_ALIGNMENT);
    const raw: { name: string; shape: number[]; type: GgmlType; offset: number }[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string();
      const dims = c.u32();
      const ne: number[] = [];
      for (let d = 0; d < dims; d++) ne.push(c.u64());
      const typeId = c.u32();
      const type = ggmlTypeById(typeId);
      if (!type)
        throw new LoraforgeError(
          `${where}: tensor ${name} has ggml type ${typeId}, which loraforge does not read`,
        );
      raw.push({ name, shape: ne.reverse(), type, offset: c.u64() });
    }
    const dataStart = alignUp(c.pos, alignment);
    for (const t of raw) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      this.tensors.push({
        name: t.name,
        shape: t.shape,
        type: t.type,
        start: dataStart + t.offset,
        byteLength: tensorBytes(t.type, count),
      });
    }
  }

  static open(path: string): GgufReader {
    return new GgufReader(readFileSync(path), path);
  }

  /** A scalar metadata value, or undefined. */
  scalar(key: string): GgufScalar | undefined {
    const v = this.metadata.get(key);
    return v && v.type !== 'array' ? v.value : undefined;
  }

  array(key: string): readonly GgufScalar[] | undefined {
    const v = this.metadata.get(key);
    return v && v.type === 'array' ? v.values : undefined;
  }

  tensor(name: string): GgufTensorEntry {
    const t = this.tensors.find((e) => e.name === name);
    if (!t) throw new LoraforgeError(`${this.where}: no tensor ${name}`);
    return t;
  }

  /** The tensor's values as f32 (dequantized). */
  values(name: string): Float32Array {
    const t = this.tensor(name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    return t.type.decode(this.bytes.subarray(t.start, t.start + t.byteLength), count);
  }
}
