/**
 * Q8_0 (ggml block_q8_0, 34 bytes per 32 values): an f16 scale d = max|x| / 127, then 32 signed
 * bytes q = round(x / d); the value is d·q.
 */
import { checkBlocks, getF16, putF16, roundAway } from './blocks.ts';

const QK = 32;
const BLOCK_BYTES = 2 + QK;

export function encodeQ8_0(x: Float32Array): Uint8Array {
  const blocks = checkBlocks(x.length, QK, 'Q8_0');
  const out = new Uint8Array(blocks * BLOCK_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[base + j]!));
    const d = amax / 127;
    // Quantize with the exact scale (as ggml does), store the scale as f16.
    putF16(view, b * BLOCK_BYTES, d);
    const inv = d ? 1 / d : 0;
    for (let j = 0; j < QK; j++) {
      view.setInt8(b * BLOCK_BYTES + 2 + j, roundAway(x[base + j]! * inv));
    }
  }
  return out;
}

export function decodeQ8_0(bytes: Uint8Array, count: number): Float32Array {
  const blocks = checkBlocks(count, QK, 'Q8_0');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let b = 0; b < blocks; b++) {
    const d = getF16(view, b * BLOCK_BYTES);
    for (let j = 0; j < QK; j++) out[b * QK + j] = d * view.getInt8(b * BLOCK_BYTES + 2 + j);
  }
  return out;
}
