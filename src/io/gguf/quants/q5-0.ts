/**
 * Q5_0 (ggml block_q5_0, 22 bytes per 32 values): f16 scale d, 4 bytes holding bit 4 of each
 * 5-bit code (bit j for value j), 16 bytes of low nibbles (byte j: value j low, value j+16
 * high). The value is d·(code − 16). llama.cpp falls back to Q5_0 where a row cannot hold
 * 256-value Q4_K blocks; d is chosen from the value of largest magnitude so that it maps to −16.
 */
import { checkBlocks, getF16, putF16 } from './blocks.ts';

const QK = 32;
const BLOCK_BYTES = 22;

export function encodeQ5_0(x: Float32Array): Uint8Array {
  const blocks = checkBlocks(x.length, QK, 'Q5_0');
  const out = new Uint8Array(blocks * BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK;
    const o = b * BLOCK_BYTES;
    let extreme = 0;
    for (let j = 0; j < QK; j++) {
      if (Math.abs(x[base + j]!) > Math.abs(extreme)) extreme = x[base + j]!;
    }
    const d = extreme / -16;
    putF16(view, o, d);
    const inv = d ? 1 / d : 0;
    let high = 0;
    for (let j = 0; j < QK / 2; j++) {
      const lo = Math.min(31, Math.floor(x[base + j]! * inv + 16.5));
      const hi = Math.min(31, Math.floor(x[base + j + 16]! * inv + 16.5));
      out[o + 6 + j] = (lo & 0xf) | ((hi & 0xf) << 4);
      high |= ((lo >> 4) & 1) << j;
      high |= ((hi >> 4) & 1) << (j + 16);
    }
    view.setUint32(o + 2, high >>> 0, true);
  }
  return out;
}

export function decodeQ5_0(bytes: Uint8Array, count: number): Float32Array {
  const blocks = checkBlocks(count, QK, 'Q5_0');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let b = 0; b < blocks; b++) {
    const o = b * BLOCK_BYTES;
    const d = getF16(view, o);
    const high = view.getUint32(o + 2, true);
    for (let j = 0; j < QK / 2; j++) {
      const byte = bytes[o + 6 + j]!;
      const lo = (byte & 0xf) | (((high >>> j) & 1) << 4);
      const hi = (byte >> 4) | (((high >>> (j + 16)) & 1) << 4);
      out[b * QK + j] = d * (lo - 16);
      out[b * QK + j + 16] = d * (hi - 16);
    }
  }
  return out;
}
