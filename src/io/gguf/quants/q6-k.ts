/**
 * Q6_K (ggml block_q6_K, 210 bytes per 256 values): 16 sub-blocks of 16 values, each with a
 * signed 8-bit scale; one f16 factor d last; a value is d·scale·(q − 32) with a 6-bit code q.
 * Layout: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 scales, d. Within each
 * 128-value half, byte l of the low nibbles holds values l (low) and l+64 (high), byte l+32
 * holds l+32 and l+96; high byte l holds the top bits of l, l+32, l+64, l+96 (2 bits each).
 *
 * loraforge's encoder: a sub-block's scale maps its value of largest magnitude to −32 (the long
 * end of [−32, 31]); the scales then share d so the largest maps to −128.
 */
import { checkBlocks, getF16, putF16, roundAway } from './blocks.ts';

const QK = 256;
const SUB = 16;
const BLOCK_BYTES = 210;

/** Byte offsets of value `pos` (0..255) in a block: its low-nibble byte and shift, high byte and shift. */
function codePlace(pos: number): [number, number, number, number] {
  const half = pos >> 7;
  const p = pos & 127;
  const l = p & 31;
  const quarter = p >> 5; // 0: l, 1: l+32, 2: l+64, 3: l+96
  const low = half * 64 + l + (quarter & 1) * 32;
  return [low, quarter & 2 ? 4 : 0, 128 + half * 32 + l, quarter * 2];
}

export function encodeQ6K(x: Float32Array): Uint8Array {
  const blocks = checkBlocks(x.length, QK, 'Q6_K');
  const out = new Uint8Array(blocks * BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const scales = new Float64Array(16);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK;
    const o = b * BLOCK_BYTES;
    let extremeScale = 0;
    for (let s = 0; s < 16; s++) {
      let extreme = 0;
      for (let i = 0; i < SUB; i++) {
        const v = x[base + s * SUB + i]!;
        if (Math.abs(v) > Math.abs(extreme)) extreme = v;
      }
      scales[s] = extreme / -32;
      if (Math.abs(scales[s]!) > Math.abs(extremeScale)) extremeScale = scales[s]!;
    }
    const d = putF16(view, o + 208, extremeScale / -128);
    for (let s = 0; s < 16; s++) {
      const sc = d ? Math.max(-128, Math.min(127, roundAway(scales[s]! / d))) : 0;
      view.setInt8(o + 192 + s, sc);
      const step = d * sc;
      for (let i = 0; i < SUB; i++) {
        const pos = s * SUB + i;
        const q = step ? Math.max(-32, Math.min(31, roundAway(x[base + pos]! / step))) + 32 : 32;
        const [low, lowShift, high, highShift] = codePlace(pos);
        out[o + low]! |= (q & 0xf) << lowShift;
        out[o + high]! |= (q >> 4) << highShift;
      }
    }
  }
  return out;
}

export function decodeQ6K(bytes: Uint8Array, count: number): Float32Array {
  const blocks = checkBlocks(count, QK, 'Q6_K');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let b = 0; b < blocks; b++) {
    const o = b * BLOCK_BYTES;
    const d = getF16(view, o + 208);
    for (let pos = 0; pos < QK; pos++) {
      const [low, lowShift, high, highShift] = codePlace(pos);
      const q =
        ((bytes[o + low]! >> lowShift) & 0xf) | (((bytes[o + high]! >> highShift) & 3) << 4);
      out[b * QK + pos] = d * view.getInt8(o + 192 + (pos >> 4)) * (q - 32);
    }
  }
  return out;
}
