/**
 * The GEMM tuner's cache under Node: one JSON file in the user cache directory
 * ($XDG_CACHE_HOME or ~/.cache, then loraforge/webgpu-tuning.json), written atomically (temporary
 * file + rename) so that parallel processes never read half a file. Unreadable or unwritable
 * caches only cost a retune. Kept apart from tuner.ts so that the browser bundle has no file system.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TuneStore } from './tuner.ts';

export function defaultTuneCachePath(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'loraforge', 'webgpu-tuning.json');
}

export function fileTuneStore(path = defaultTuneCachePath()): TuneStore {
  const read = (): Record<string, string> => {
    try {
      const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
      return parsed && typeof parsed === 'object' ? (parsed as Record<string, string>) : {};
    } catch {
      return {};
    }
  };
  return {
    get: (key) => {
      const value = read()[key];
      return typeof value === 'string' ? value : undefined;
    },
    set: (key, value) => {
      try {
        mkdirSync(dirname(path), { recursive: true });
        const temporary = `${path}.${process.pid}.tmp`;
        writeFileSync(temporary, JSON.stringify({ ...read(), [key]: value }, null, 2));
        renameSync(temporary, path);
      } catch {
        // A read-only home: the next process tunes again.
      }
    },
  };
}
