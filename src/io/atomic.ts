/**
 * Crash-safe file and folder writes: data goes to a temporary sibling, is fsynced, then renamed
 * over the target, so a crash or Ctrl-C mid-write leaves either the old or the new version,
 * never a torn one.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync, existsSync } from 'node:fs';
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
  const tmp = tempSibling(path);
  const fd = openSync(tmp, 'w');
  try {
    produce((bytes) => {
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    });
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
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
