/**
 * Checks on a folder loraforge is about to write into, so that no command deletes or overwrites
 * what the user did not ask it to: a non-empty folder needs an explicit overwrite flag, and the
 * output may never be (or hold, or sit inside) a folder the same command is reading from.
 */
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, basename, join, relative, resolve, isAbsolute, sep } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';

export interface OutputFolderCheck {
  /** The overwrite flag's name as the user types it, for the hint (e.g. `--overwrite`). */
  overwriteFlag: string;
  overwrite: boolean;
  /** Folders the command reads, by the flag that named them (`--model`: dir). */
  sources?: Record<string, string>;
  /** Names inside the folder that do not make it "non-empty" (a lock file of this run). */
  ignore?: (name: string) => boolean;
}

/** The real path of `path`, or of its nearest existing parent joined with the rest. */
function realPathOf(path: string): string {
  const abs = resolve(path);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : join(realPathOf(parent), basename(abs));
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Names in `dir` that count as content ([] when it does not exist); errors when it is a file. */
export function folderContents(dir: string, ignore?: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  if (!statSync(dir).isDirectory())
    throw new LoraforgeError(
      `${dir}: is a file, expected a folder to write into`,
      'choose a folder path',
    );
  return readdirSync(dir).filter((name) => !ignore?.(name));
}

/** Throws unless `dir` may be written: absent or empty, or overwrite given; never a source. */
export function checkOutputFolder(dir: string, check: OutputFolderCheck): void {
  const out = realPathOf(dir);
  for (const [flag, source] of Object.entries(check.sources ?? {})) {
    const src = realPathOf(source);
    if (isInside(out, src) || isInside(src, out)) {
      throw new LoraforgeError(
        `${dir}: the output folder would overwrite ${flag} ${source}, which this command reads`,
        'choose an output folder outside it (and not containing it)',
      );
    }
  }
  const contents = folderContents(dir, check.ignore);
  if (contents.length > 0 && !check.overwrite) {
    throw new LoraforgeError(
      `${dir}: the output folder is not empty (${contents.length} entries, e.g. ${contents[0]})`,
      `choose a new folder, or pass ${check.overwriteFlag} to replace loraforge's files in it (other files are kept)`,
    );
  }
}
