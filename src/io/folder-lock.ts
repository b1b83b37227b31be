/**
 * An advisory lock on a folder (a `.loraforge.lock` file holding pid, host and start time), so
 * that two processes never write one output folder at once. A lock whose process is gone (same
 * host, pid no longer alive) is stale and taken over; one from another host cannot be checked
 * and is respected.
 */
import {
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';

export const LOCK_FILE = '.loraforge.lock';

interface LockOwner {
  pid: number;
  host: string;
  started: string;
}

export interface FolderLock {
  readonly path: string;
  /** Removes the lock file if it is still this process's; safe to call twice. */
  release(): void;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
    return Number.isInteger(owner?.pid) && typeof owner.host === 'string' ? owner : undefined;
  } catch {
    return undefined; // unreadable or half-written: treated as stale
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Infinity; // gone meanwhile
  }
}

function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true; // cannot tell from here: respect it
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by another user
  }
}

/**
 * Removes a stale lock file, unless another process replaced it meanwhile: it is first moved
 * aside (only one taker's rename succeeds), then checked to be the stale one; a fresh lock moved
 * by mistake is linked back (link fails if the name is taken, so nothing is overwritten).
 */
function takeOverStale(path: string, stale: LockOwner | undefined): void {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // another taker moved it
    throw err;
  }
  const moved = readOwner(aside);
  const same = moved?.pid === stale?.pid && moved?.started === stale?.started;
  if (!same) {
    try {
      linkSync(aside, path);
    } catch {
      /* the name is taken again: that lock stands */
    }
  }
  rmSync(aside, { force: true });
}

/** Takes the lock on `dir` (created if missing) or throws naming the process that holds it. */
export function lockFolder(dir: string): FolderLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (;;) {
    try {
      writeFileSync(path, JSON.stringify(me) + '\n', { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(path);
    // An unreadable lock younger than a few seconds is being written by its taker right now.
    if (owner ? isAlive(owner) : ageMs(path) < 5000) {
      throw new LoraforgeError(
        `${dir} is in use by another loraforge run` +
          (owner ? ` (pid ${owner.pid} on ${owner.host}, since ${owner.started})` : ''),
        `wait for it to end or choose another output folder; if that process is gone, delete ${path}`,
      );
    }
    takeOverStale(path, owner);
  }
  const release = () => {
    if (readOwner(path)?.pid === me.pid) rmSync(path, { force: true });
    process.off('exit', release);
  };
  // A second Ctrl-C ends the process with process.exit: the lock goes with it.
  process.on('exit', release);
  return { path, release };
}
