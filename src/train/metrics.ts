/**
 * Training metrics as JSON Lines: one object per log event, appended and flushed immediately so
 * a crashed or interrupted run keeps everything logged up to that point (and a dashboard can
 * tail the file while training runs).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { LoraforgeError } from '../util/errors.ts';

/** One log event. Train events carry loss / lr / grad_norm, eval events eval_loss / eval_ppl. */
export interface MetricsRecord {
  /** Optimizer step the event belongs to (1-based, HF global_step). */
  step: number;
  epoch?: number;
  loss?: number;
  lr?: number;
  grad_norm?: number;
  tokens_per_s?: number;
  eval_loss?: number;
  eval_ppl?: number;
  /** ISO time of the event. */
  time?: string;
  [key: string]: unknown;
}

// JSON has no NaN / Infinity, yet a diverging loss is exactly what a metrics log must show.
const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function encodeRecord(record: MetricsRecord): string {
  return JSON.stringify(record, (_key, value) =>
    typeof value === 'number' && !Number.isFinite(value) ? String(value) : value,
  );
}

function decodeRecord(line: string): MetricsRecord {
  return JSON.parse(line, (_key, value) =>
    typeof value === 'string' && value in NON_FINITE ? NON_FINITE[value] : value,
  );
}

export class MetricsWriter {
  /**
   * Opens `path` for appending; with `{ truncate: true }` an existing file is replaced by an
   * empty one (a fresh run), otherwise new events follow the old ones (a resumed run).
   */
  constructor(
    readonly path: string,
    options: { truncate?: boolean } = {},
  ) {
    mkdirSync(dirname(path), { recursive: true });
    if (options.truncate || !existsSync(path)) writeFileAtomic(path, '');
  }

  write(record: MetricsRecord): void {
    if (!Number.isFinite(record.step))
      throw new Error(`metrics record without a step: ${JSON.stringify(record)}`);
    appendFileSync(this.path, `${encodeRecord(record)}\n`);
  }
}

/**
 * Reads every record of a metrics file. A torn last line (the process died mid-write) is
 * skipped; a bad line elsewhere is an error naming the line.
 */
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) throw new LoraforgeError(`metrics file not found: ${path}`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const records: MetricsRecord[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      records.push(decodeRecord(line));
    } catch {
      const isLast = lines.slice(i + 1).every((rest) => rest.trim() === '');
      if (!isLast) throw new LoraforgeError(`${path}:${i + 1}: not a JSON metrics record`);
    }
  });
  return records;
}

/**
 * Drops records after `step`: when a run resumes from checkpoint-<step>, the events the crashed
 * run logged past that checkpoint would otherwise appear twice in plots.
 */
export function truncateMetricsAfter(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readMetrics(path).filter((r) => r.step <= step);
  writeFileAtomic(path, kept.map((r) => `${encodeRecord(r)}\n`).join(''));
}
