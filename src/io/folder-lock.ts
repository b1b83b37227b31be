/**
 * An advisory lock on a folder (a `.loraforge.lock` file holding pid, host and start time), so
 * that two processes never write one output folder at once. A lock whose process is gone (same
 * host, pid no longer alive) is stale and taken over; one from another host cannot be checked
 * and is respected.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true; // cannot tell from here: respect it
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by another user
  }
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
    if (owner && isAlive(owner)) {
      throw new LoraforgeError(
        `${dir} is in use by another loraforge run (pid ${owner.pid} on ${owner.host}, since ${owner.started})`,
        `wait for it to end or choose another output folder; if that process is gone, delete ${path}`,
      );
    }
    rmSync(path, { force: true });
  }
  const release = () => {
    if (readOwner(path)?.pid === me.pid) rmSync(path, { force: true });
    process.off('exit', release);
  };
  // A second Ctrl-C ends the process with process.exit: the lock goes with it.
  process.on('exit', release);
  return { path, release };
}
