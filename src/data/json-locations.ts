/**
 * Finds where each record of a JSON dataset starts in the source text, so a bad record can be
 * reported by line. JSON.parse gives values but no positions, hence this small scanner. It
 * assumes the text already parsed successfully.
 *
 * The records are the elements of the root array, or of the root object's "data" array.
 * Returns one character offset per record (empty if there is no such array).
 */
export function recordOffsets(text: string): number[] {
  let i = skipWhitespace(text, 0);
  if (text[i] === '[') return arrayElementOffsets(text, i);
  if (text[i] !== '{') return [];
  let found: number[] = [];
  i = skipWhitespace(text, i + 1);
  while (text[i] === '"') {
    const keyEnd = skipValue(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWhitespace(text, skipWhitespace(text, keyEnd) + 1); // past ':'
    // JSON.parse keeps the last duplicate key, so keep scanning and let later ones win.
    if (key === 'data' && text[i] === '[') found = arrayElementOffsets(text, i);
    i = skipWhitespace(text, skipValue(text, i));
    if (text[i] !== ',') break;
    i = skipWhitespace(text, i + 1);
  }
  return found;
}

function arrayElementOffsets(text: string, open: number): number[] {
  const offsets: number[] = [];
  let i = skipWhitespace(text, open + 1);
  if (text[i] === ']') return offsets;
  for (;;) {
    offsets.push(i);
    i = skipWhitespace(text, skipValue(text, i));
    if (text[i] !== ',') return offsets;
    i = skipWhitespace(text, i + 1);
  }
}

function skipWhitespace(text: string, i: number): number {
  while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  return i;
}

/** Index just past the JSON value starting at `i`. */
function skipValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return skipString(text, i);
  if (c === '[' || c === '{') {
    let depth = 0;
    while (i < text.length) {
      const d = text[i]!;
      if (d === '"') {
        i = skipString(text, i);
        continue;
      }
      if (d === '[' || d === '{') depth++;
      else if (d === ']' || d === '}') {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return i;
  }
  while (i < text.length && !',]} \t\r\n'.includes(text[i]!)) i++;
  return i;
}

function skipString(text: string, i: number): number {
  i++;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** 1-based line numbers of ascending character offsets, in one pass over the text. */
export function linesOfOffsets(text: string, offsets: number[]): number[] {
  const lines: number[] = [];
  let line = 1;
  let pos = 0;
  for (const offset of offsets) {
    for (; pos < offset; pos++) if (text.charCodeAt(pos) === 10) line++;
    lines.push(line);
  }
  return lines;
}
