import { LoraforgeError } from '../util/errors.ts';

/** One CSV row and the 1-based line it starts on (a quoted field may span several lines). */
export interface CsvRow {
  line: number;
  fields: string[];
}

/**
 * RFC 4180 CSV: comma separated, fields optionally in double quotes, `""` is a literal quote
 * inside quotes, and quoted fields may contain commas and line breaks. Accepts LF, CRLF and CR
 * line endings. Blank lines are skipped.
 */
export function parseCsvRows(text: string, file: string): CsvRow[] {
  const rows: CsvRow[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const rowLine = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= text.length)
            throw new LoraforgeError(`${file}:${rowLine}: unterminated quoted field`);
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
          field += c;
          i++;
        }
        if (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
          throw new LoraforgeError(
            `${file}:${line}: unexpected character after a closing quote`,
            'write a quote inside a quoted field as ""',
          );
        }
      } else {
        const start = i;
        while (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') i++;
        field = text.slice(start, i);
      }
      fields.push(field);
      if (text[i] === ',') {
        i++;
        continue;
      }
      break;
    }
    // At a line break or the end of the text.
    if (text[i] === '\r') i++;
    if (text[i] === '\n') i++;
    line++;
    const blank = fields.length === 1 && fields[0] === '';
    if (!blank) rows.push({ line: rowLine, fields });
  }
  return rows;
}
