/**
 * Crash-safe file and folder writes: data goes to a temporary sibling, is fsynced, then renamed
 * over the target, so a crash or Ctrl-C mid-write leaves either the old or the new version,
 * never a torn one.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, basename, join } from 'node:path';

function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
}

function fsyncDir(dir: string): void {
  // Makes the rename itself durable; not every platform lets a directory be opened.
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* best effort */
  }
}

/** Writes chunks (in order) to `path` atomically. */
export function writeFileAtomic(
  path: string,
  chunks: Uint8Array | string | (Uint8Array | string)[],
): void {
  writeFileAtomicStreaming(path, (write) => {
    for (const chunk of Array.isArray(chunks) ? chunks : [chunks]) {
      write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    }
  });
}

/**
 * Writes `path` atomically from a producer that hands over bytes piece by piece (a file larger
 * than memory): if the producer throws, the temporary file is removed and `path` is untouched.
 */
export function writeFileAtomicStreaming(
  path: string,
  produce: (write: (bytes: Uint8Array) => void) => void,
): void {
  const file = openTemporary(path);
  try {
    produce(file.write);
  } catch (err) {
    throw file.abandon(err);
  }
  file.publish();
}

/** writeFileAtomicStreaming for a producer that awaits between pieces (data read from a GPU). */
export async function writeFileAtomicStreamingAsync(
  path: string,
  produce: (write: (bytes: Uint8Array) => void) => Promise<void>,
): Promise<void> {
  const file = openTemporary(path);
  try {
    await produce(file.write);
  } catch (err) {
    throw file.abandon(err);
  }
  file.publish();
}

/** A temporary sibling of `path` being written: published by fsync + rename, or abandoned. */
function openTemporary(path: string) {
  const tmp = tempSibling(path);
  const fd = openSync(tmp, 'w');
  const abandon = (err: unknown): Error => {
    closeSync(fd);
    rmSync(tmp, { force: true });
    // A failed write(2) (disk full) names no file; the one being written is what the user needs.
    return Object.assign(err as Error, { path: (err as NodeJS.ErrnoException).path ?? path });
  };
  return {
    write(bytes: Uint8Array): void {
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    },
    abandon,
    publish(): void {
      try {
        fsyncSync(fd);
      } catch (err) {
        throw abandon(err);
      }
      closeSync(fd);
      renameSync(tmp, path);
      fsyncDir(dirname(path));
    },
  };
}

/**
 * Builds a folder atomically: `fill(tmpDir)` writes into a temporary sibling folder, which then
 * replaces `path` (the old folder, if any, is removed only after the new one is complete).
 */
export function writeDirAtomic(path: string, fill: (tmpDir: string) => void): void {
  const tmp = tempSibling(path);
  rmSync(tmp, { recursive: true, force: true });
  try {
    fill(tmp);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  replaceDir(tmp, path);
}

/** writeDirAtomic for a `fill` that awaits (files whose bytes are read back from a GPU). */
export async function writeDirAtomicAsync(
  path: string,
  fill: (tmpDir: string) => Promise<void>,
): Promise<void> {
  const tmp = tempSibling(path);
  rmSync(tmp, { recursive: true, force: true });
  try {
    await fill(tmp);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  replaceDir(tmp, path);
}

/** The finished folder `tmp` in place of `path` (the old one removed only afterwards). */
function replaceDir(tmp: string, path: string): void {
  fsyncDir(tmp);
  if (existsSync(path)) {
    const old = `${tmp}.old`;
    renameSync(path, old);
    renameSync(tmp, path);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, path);
  }
  fsyncDir(dirname(path));
}

/**
 * Removes a folder so that it is never seen half-deleted under its own name: it is first renamed
 * to a temporary sibling (`.<name>.tmp-<pid>-<time>.old`), then deleted. A crash mid-delete
 * leaves only that sibling, which the next writer can sweep away.
 */
export function removeDirAtomic(path: string): void {
  if (!existsSync(path)) return;
  const doomed = `${tempSibling(path)}.old`;
  renameSync(path, doomed);
  fsyncDir(dirname(path));
  rmSync(doomed, { recursive: true, force: true });
}

export interface PublishOptions {
  /** Files renamed last, in this order: the commit point (a reader treats the folder as holding
   * the output only once these exist, e.g. adapter_config.json). */
  commitLast?: readonly string[];
  /** Files of the target that must stay as they are (a user's README.md): not replaced. */
  keep?: (name: string) => boolean;
}

/**
 * Writes a set of files into `dir`, replacing only those files: `fill(tmpDir)` builds them in a
 * temporary sibling folder; a missing `dir` is then created by one rename, an existing one gets
 * each file by its own atomic rename (the `commitLast` ones last), and everything else in it is
 * left alone. So a folder the user owns never loses a file loraforge did not write, and a crash
 * leaves every file either old or new.
 */
export function publishFiles(
  dir: string,
  fill: (tmpDir: string) => void,
  opts: PublishOptions = {},
): void {
  const tmp = tempSibling(dir);
  rmSync(tmp, { recursive: true, force: true });
  try {
    fill(tmp);
    moveFilesInto(tmp, dir, opts);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** publishFiles for a `fill` that awaits (files whose bytes are read back from a GPU). */
export async function publishFilesAsync(
  dir: string,
  fill: (tmpDir: string) => Promise<void>,
  opts: PublishOptions = {},
): Promise<void> {
  const tmp = tempSibling(dir);
  rmSync(tmp, { recursive: true, force: true });
  try {
    await fill(tmp);
    moveFilesInto(tmp, dir, opts);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The publishing step of publishFiles: the finished `tmp` folder's files into `dir`. */
function moveFilesInto(tmp: string, dir: string, opts: PublishOptions): void {
  fsyncDir(tmp);
  if (!existsSync(dir)) {
    renameSync(tmp, dir);
    fsyncDir(dirname(dir));
    return;
  }
  const last = opts.commitLast ?? [];
  const names = readdirSync(tmp).filter((name) => !opts.keep?.(name));
  const ordered = [
    ...names.filter((n) => !last.includes(n)),
    ...last.filter((n) => names.includes(n)),
  ];
  for (const name of ordered) renameSync(join(tmp, name), join(dir, name));
  fsyncDir(dir);
}
