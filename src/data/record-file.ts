import { existsSync } from 'node:fs';
import { decodeUtf8, readCheckedAsync, READ_LIMITS } from '../io/safe-read.ts';
import { LoraforgeError } from '../util/errors.ts';
import { parseRecords, type RawRecord } from './records.ts';
import { stripBom } from './text.ts';

/** Reads a .json, .jsonl/.ndjson or .csv dataset file into records (strict UTF-8, size-capped). */
export async function readRecords(file: string): Promise<RawRecord[]> {
  if (!existsSync(file)) throw new LoraforgeError(`${file}: dataset file not found`);
  const bytes = await readCheckedAsync(file, { maxBytes: READ_LIMITS.dataset });
  return parseRecords(stripBom(decodeUtf8(bytes, file)), file);
}
