import { readFile } from 'node:fs/promises';
import { LoraforgeError } from '../util/errors.ts';
import { parseRecords, type RawRecord } from './records.ts';
import { stripBom } from './text.ts';

/** Reads a .json, .jsonl/.ndjson or .csv dataset file into records. */
export async function readRecords(file: string): Promise<RawRecord[]> {
  let text: string;
  try {
    text = stripBom(await readFile(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LoraforgeError(`${file}: dataset file not found`);
    throw new LoraforgeError(`${file}: cannot read dataset file (${code ?? String(err)})`);
  }
  return parseRecords(text, file);
}
