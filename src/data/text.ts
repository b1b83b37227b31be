/**
 * Characters Python's `str.isspace()` accepts. The tutorial's preprocessing calls `str.strip()`,
 * and JavaScript's `trim()` differs from it (it strips U+FEFF but keeps U+001C..U+001F and U+0085),
 * so prompts would not be byte-identical without this.
 */
const PYTHON_WHITESPACE = new Set([
  '\t',
  '\n',
  '\v',
  '\f',
  '\r',
  '\x1c',
  '\x1d',
  '\x1e',
  '\x1f',
  ' ',
  '\x85',
  '\xa0',
  '\u1680',
  '\u2000',
  '\u2001',
  '\u2002',
  '\u2003',
  '\u2004',
  '\u2005',
  '\u2006',
  '\u2007',
  '\u2008',
  '\u2009',
  '\u200a',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
]);

/** Python's `str.strip()` with no argument: removes whitespace from both ends. */
export function pythonStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PYTHON_WHITESPACE.has(text[start]!)) start++;
  while (end > start && PYTHON_WHITESPACE.has(text[end - 1]!)) end--;
  return text.slice(start, end);
}

/** 1-based line number of a character offset. */
export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Drops a UTF-8 byte-order mark, which editors on Windows like to add to CSV/JSON files. */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
