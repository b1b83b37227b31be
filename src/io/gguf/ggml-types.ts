/**
 * ggml tensor types loraforge writes: plain floats and the block-quantized types a Q8_0 or
 * Q4_K_M export needs. A block packs `blockSize` consecutive values of a row into `blockBytes`;
 * rows are quantized independently, so a row's length must be a multiple of the block size.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../engine/half.ts';
import { decodeQ4K, encodeQ4K } from './quants/q4-k.ts';
import { decodeQ5_0, encodeQ5_0 } from './quants/q5-0.ts';
import { decodeQ6K, encodeQ6K } from './quants/q6-k.ts';
import { decodeQ8_0, encodeQ8_0 } from './quants/q8-0.ts';

export type GgmlTypeName = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q5_0' | 'Q4_K' | 'Q6_K';

export interface GgmlType {
  name: GgmlTypeName;
  /** The id in ggml's `enum ggml_type`. */
  id: number;
  blockSize: number;
  blockBytes: number;
  encode(values: Float32Array): Uint8Array;
  decode(bytes: Uint8Array, count: number): Float32Array;
}

const bytesOf = (view: ArrayBufferView) =>
  new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

/** An aligned copy of the first `n` bytes (a Node Buffer's slice would share, and be unaligned). */
function alignedCopy(bytes: Uint8Array, n: number): ArrayBuffer {
  const copy = new Uint8Array(n);
  copy.set(bytes.subarray(0, n));
  return copy.buffer;
}

function halfType(name: 'F16' | 'BF16', id: number): GgmlType {
  const [toHalf, fromHalf] = name === 'F16' ? [f32ToF16, f16ToF32] : [f32ToBf16, bf16ToF32];
  return {
    name,
    id,
    blockSize: 1,
    blockBytes: 2,
    encode: (values) => bytesOf(toHalf(values)),
    decode: (bytes, count) => fromHalf(new Uint16Array(alignedCopy(bytes, count * 2))),
  };
}

export const GGML_TYPES: Record<GgmlTypeName, GgmlType> = {
  F32: {
    name: 'F32',
    id: 0,
    blockSize: 1,
    blockBytes: 4,
    encode: (values) => bytesOf(values),
    decode: (bytes, count) => new Float32Array(alignedCopy(bytes, count * 4)),
  },
  F16: halfType('F16', 1),
  BF16: halfType('BF16', 30),
  Q5_0: {
    name: 'Q5_0',
    id: 6,
    blockSize: 32,
    blockBytes: 22,
    encode: encodeQ5_0,
    decode: decodeQ5_0,
  },
  Q8_0: {
    name: 'Q8_0',
    id: 8,
    blockSize: 32,
    blockBytes: 34,
    encode: encodeQ8_0,
    decode: decodeQ8_0,
  },
  Q4_K: {
    name: 'Q4_K',
    id: 12,
    blockSize: 256,
    blockBytes: 144,
    encode: encodeQ4K,
    decode: decodeQ4K,
  },
  Q6_K: {
    name: 'Q6_K',
    id: 14,
    blockSize: 256,
    blockBytes: 210,
    encode: encodeQ6K,
    decode: decodeQ6K,
  },
};

export function ggmlTypeById(id: number): GgmlType | undefined {
  return Object.values(GGML_TYPES).find((t) => t.id === id);
}

/** Bytes of a tensor with `count` values (count a multiple of the block size). */
export function tensorBytes(type: GgmlType, count: number): number {
  return (count / type.blockSize) * type.blockBytes;
}
