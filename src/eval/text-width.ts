/**
 * Terminal column widths. Chinese, Japanese and Korean characters, full-width punctuation (，？)
 * and most emoji take two columns, so padding by `string.length` would misalign a table.
 */

/** Code point ranges (inclusive) that East Asian terminals draw two columns wide. */
const WIDE_RANGES: readonly [number, number][] = [
  [0x1100, 0x115f], // Hangul Jamo
  [0x2e80, 0x303e], // CJK radicals, symbols and punctuation (、。「」)
  [0x3041, 0x33ff], // kana, Bopomofo, CJK compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small form variants
  [0xff00, 0xff60], // full-width forms (，？！)
  [0xffe0, 0xffe6], // full-width signs
  [0x1f300, 0x1f64f], // pictographs, emoticons
  [0x1f900, 0x1f9ff], // supplemental symbols and pictographs
  [0x20000, 0x3fffd], // CJK extensions B and later
];

function isWide(codePoint: number): boolean {
  return WIDE_RANGES.some(([lo, hi]) => codePoint >= lo && codePoint <= hi);
}

/** Combining marks, zero-width joiners and variation selectors draw nothing of their own. */
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}\u200b\ufe00-\ufe0f]/u;

function charWidth(ch: string): number {
  if (ZERO_WIDTH.test(ch)) return 0;
  return isWide(ch.codePointAt(0)!) ? 2 : 1;
}

export function displayWidth(text: string): number {
  let width = 0;
  for (const ch of text) width += charWidth(ch);
  return width;
}

/**
 * Exactly `width` columns: shorter text is padded with spaces, longer text is cut and ends with
 * "…" (a wide character that would straddle the edge is replaced by padding).
 */
export function fitToWidth(text: string, width: number): string {
  const textWidth = displayWidth(text);
  if (textWidth <= width) return text + ' '.repeat(width - textWidth);
  let out = '';
  let used = 0;
  for (const ch of text) {
    const w = charWidth(ch);
    if (used + w > width - 1) break;
    out += ch;
    used += w;
  }
  return out + '…' + ' '.repeat(width - 1 - used);
}
