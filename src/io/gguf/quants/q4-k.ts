/**
 * Q4_K (ggml block_q4_K, 144 bytes per 256 values): a super-block of 8 sub-blocks of 32 values.
 * Each sub-block has a 6-bit scale sc and 6-bit min m; the super-block two f16 factors d, dmin;
 * a value is d·sc·q − dmin·m with a 4-bit code q. Layout: d, dmin, 12 bytes packing the 16 six-
 * bit numbers (sub-blocks 0-3 in the low 6 bits of bytes 0-7; 4-7 as nibbles in bytes 8-11 with
 * their top 2 bits in the spare high bits of bytes 0-7), then 128 bytes of codes: each 64-value
 * chunk is 32 bytes, value l in the low nibble and value l+32 in the high nibble.
 *
 * The encoder is loraforge's own: per sub-block a min/max start refined by least squares on the
 * 4-bit grid (offset kept ≥ 0, as the format can only subtract), then the 6-bit factors.
 */
import { checkBlocks, getF16, putF16, roundAway } from './blocks.ts';

const QK = 256;
const SUB = 32;
const BLOCK_BYTES = 144;

/** Best (scale, offset) with x ≈ scale·q − offset, q ∈ [0, 15], offset ≥ 0. */
function fitSubBlock(x: Float32Array, start: number): [number, number] {
  let lo = 0;
  let hi = -Infinity;
  for (let i = 0; i < SUB; i++) {
    lo = Math.min(lo, x[start + i]!);
    hi = Math.max(hi, x[start + i]!);
  }
  if (hi <= lo) return [0, -lo];
  let scale = (hi - lo) / 15;
  let offset = -lo;
  let best = [scale, offset] as [number, number];
  let bestErr = subBlockError(x, start, scale, offset);
  for (let iter = 0; iter < 3; iter++) {
    // Least squares for scale and offset with the codes fixed: x ≈ scale·q − offset.
    let n = 0;
    let sq = 0;
    let sqq = 0;
    let sx = 0;
    let sqx = 0;
    for (let i = 0; i < SUB; i++) {
      const v = x[start + i]!;
      const q = Math.max(0, Math.min(15, roundAway((v + offset) / scale)));
      n++;
      sq += q;
      sqq += q * q;
      sx += v;
      sqx += q * v;
    }
    const det = n * sqq - sq * sq;
    if (det <= 0) break;
    scale = (n * sqx - sq * sx) / det;
    offset = Math.max(0, -(sx - scale * sq) / n);
    if (!(scale > 0)) break;
    const err = subBlockError(x, start, scale, offset);
    if (err >= bestErr) break;
    best = [scale, offset];
    bestErr = err;
  }
  return best;
}

function subBlockError(x: Float32Array, start: number, scale: number, offset: number): number {
  let err = 0;
  for (let i = 0; i < SUB; i++) {
    const v = x[start + i]!;
    const q = Math.max(0, Math.min(15, roundAway((v + offset) / scale)));
    err += (scale * q - offset - v) ** 2;
  }
  return err;
}

/** Sub-block j's 6-bit scale and min from the 12 packed bytes at `o`. */
function scaleMin(bytes: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [bytes[o + j]! & 63, bytes[o + j + 4]! & 63];
  return [
    (bytes[o + j + 4]! & 0xf) | ((bytes[o + j - 4]! >> 6) << 4),
    (bytes[o + j + 4]! >> 4) | ((bytes[o + j]! >> 6) << 4),
  ];
}

export function encodeQ4K(x: Float32Array): Uint8Array {
  const blocks = checkBlocks(x.length, QK, 'Q4_K');
  const out = new Uint8Array(blocks * BLOCK_BYTES);
  const view = new DataView(out.buffer);
  const scales = new Float64Array(8);
  const offsets = new Float64Array(8);
  for (let b = 0; b < blocks; b++) {
    const base = b * QK;
    const o = b * BLOCK_BYTES;
    let maxScale = 0;
    let maxOffset = 0;
    for (let j = 0; j < 8; j++) {
      [scales[j], offsets[j]] = fitSubBlock(x, base + j * SUB);
      maxScale = Math.max(maxScale, scales[j]!);
      maxOffset = Math.max(maxOffset, offsets[j]!);
    }
    const d = putF16(view, o, maxScale / 63);
    const dmin = putF16(view, o + 2, maxOffset / 63);
    for (let j = 0; j < 8; j++) {
      const sc = d ? Math.min(63, roundAway(scales[j]! / d)) : 0;
      const m = dmin ? Math.min(63, roundAway(offsets[j]! / dmin)) : 0;
      if (j < 4) {
        out[o + 4 + j] = sc;
        out[o + 4 + j + 4] = m;
      } else {
        out[o + 4 + j + 4] = (sc & 0xf) | ((m & 0xf) << 4);
        out[o + 4 + j - 4]! |= (sc >> 4) << 6;
        out[o + 4 + j]! |= (m >> 4) << 6;
      }
    }
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMin(out, o + 4, j);
      const step = d * sc;
      const shift = dmin * m;
      for (let i = 0; i < SUB; i++) {
        const pos = j * SUB + i;
        const q = step ? Math.max(0, Math.min(15, roundAway((x[base + pos]! + shift) / step))) : 0;
        // 64-value chunk c = pos >> 6: first 32 in low nibbles, next 32 in high nibbles.
        const byte = o + 16 + (pos >> 6) * 32 + (pos & 31);
        out[byte]! |= pos & 32 ? q << 4 : q;
      }
    }
  }
  return out;
}

export function decodeQ4K(bytes: Uint8Array, count: number): Float32Array {
  const blocks = checkBlocks(count, QK, 'Q4_K');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let b = 0; b < blocks; b++) {
    const o = b * BLOCK_BYTES;
    const d = getF16(view, o);
    const dmin = getF16(view, o + 2);
    for (let pos = 0; pos < QK; pos++) {
      const [sc, m] = scaleMin(bytes, o + 4, pos >> 5);
      const byte = bytes[o + 16 + (pos >> 6) * 32 + (pos & 31)]!;
      const q = pos & 32 ? byte >> 4 : byte & 0xf;
      out[b * QK + pos] = d * sc * q - dmin * m;
    }
  }
  return out;
}
