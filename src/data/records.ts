/** Dataset text → records (no file system: record-file.ts reads files, a browser fetches). */
import { LoraforgeError } from '../util/errors.ts';
import { parseCsvRows } from './csv.ts';
import { linesOfOffsets, recordOffsets } from './json-locations.ts';
import { findJsonSyntaxError } from '../util/json-syntax.ts';
import { lineAt } from './text.ts';

/** One dataset record as read from a file, before any format is applied. */
export interface RawRecord {
  fields: Record<string, unknown>;
  /** Where it came from, as an error-message prefix: `data.jsonl:17`, `data.json:record 3 (line 12)`. */
  where: string;
}

/** Parses dataset text; the file name picks the parser and prefixes error messages. */
export function parseRecords(text: string, file: string): RawRecord[] {
  switch (fileExtension(file)) {
    case '.json':
      return parseJsonRecords(text, file);
    case '.jsonl':
    case '.ndjson':
      return parseJsonlRecords(text, file);
    case '.csv':
      return parseCsvRecords(text, file);
    default:
      throw new LoraforgeError(
        `${file}: unsupported dataset file type`,
        'use .json (array of records), .jsonl (one record per line) or .csv (header row)',
      );
  }
}

/** `.json` for `data/train.JSON`, '' without an extension (what node:path's extname gives). */
function fileExtension(file: string): string {
  const base = file.slice(file.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot).toLowerCase() : '';
}

function parseJsonRecords(text: string, file: string): RawRecord[] {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch {
    throw jsonSyntaxError(text, file, 0);
  }
  const items = Array.isArray(root)
    ? root
    : isObject(root) && Array.isArray(root.data)
      ? root.data
      : undefined;
  if (!items) {
    throw new LoraforgeError(
      `${file}: expected a JSON array of records or an object with a "data" array`,
    );
  }
  const lines = linesOfOffsets(text, recordOffsets(text));
  return items.map((item: unknown, index) => {
    const line = lines[index];
    const where = `${file}:record ${index + 1}${line === undefined ? '' : ` (line ${line})`}`;
    return { fields: expectObject(item, where), where };
  });
}

function parseJsonlRecords(text: string, file: string): RawRecord[] {
  const records: RawRecord[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    const where = `${file}:${index + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw jsonSyntaxError(line, file, index);
    }
    records.push({ fields: expectObject(value, where), where });
  });
  return records;
}

function parseCsvRecords(text: string, file: string): RawRecord[] {
  const [header, ...rows] = parseCsvRows(text, file);
  if (!header)
    throw new LoraforgeError(`${file}: empty CSV file`, 'the first row must name the columns');
  const names = header.fields.map((name) => name.trim());
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined)
    throw new LoraforgeError(`${file}:${header.line}: duplicate column "${duplicate}"`);
  return rows.map((row) => {
    const where = `${file}:${row.line}`;
    if (row.fields.length !== names.length) {
      throw new LoraforgeError(
        `${where}: expected ${names.length} fields (as in the header), found ${row.fields.length}`,
        'put fields that contain commas or line breaks in double quotes',
      );
    }
    return { fields: Object.fromEntries(names.map((name, i) => [name, row.fields[i]])), where };
  });
}

/** A one-line message naming the line of the first syntax error (lineOffset: lines before `text`). */
function jsonSyntaxError(text: string, file: string, lineOffset: number): LoraforgeError {
  const found = findJsonSyntaxError(text);
  const line = lineOffset + (found ? lineAt(text, found.offset) : 1);
  return new LoraforgeError(`${file}:${line}: invalid JSON: ${found?.problem ?? 'cannot parse'}`);
}

function expectObject(value: unknown, where: string): Record<string, unknown> {
  if (isObject(value)) return value;
  const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
  throw new LoraforgeError(`${where}: expected a record (JSON object), got ${kind}`);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
