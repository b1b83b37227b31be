/**
 * The command line's one error path: whatever ends a command (a LoraforgeError, a system error
 * such as a port in use or a full disk, or a bug) is printed as one line and, where one helps,
 * a hint; the stack trace only with --debug.
 */
import { LoraforgeError } from '../index.ts';

/** What a user can do about a system error, by its code. */
const SYSTEM_HINTS: Record<string, string> = {
  EADDRINUSE: 'another program listens on that port: stop it, or pass another --port',
  EADDRNOTAVAIL: 'that --host address does not belong to this machine',
  EACCES: 'no permission: check the owner and mode of that path (ports below 1024 need root)',
  EPERM: 'the operation is not permitted: check the permissions of that path',
  ENOSPC:
    'the disk is full: free some space, then run again (a training run resumes from its last checkpoint, which is kept)',
  EDQUOT: 'the disk quota is used up: free some space, then run again',
  EROFS: 'that file system is read-only: choose another location',
  EISDIR: 'a folder was given where a file is expected',
  ENOTDIR: 'a file was given where a folder is expected (or a folder on the path is a file)',
  ENOENT: 'check the path',
  EEXIST: 'something already exists at that path',
  EMFILE: 'too many open files: raise the limit (ulimit -n)',
  ENOMEM: 'out of memory: try a smaller batch, --dtype bf16, or fewer threads',
  ERR_SOCKET_BAD_PORT: 'a port is a whole number from 0 to 65535',
};

interface SystemError extends Error {
  code?: string;
  path?: string;
  dest?: string;
}

/** The line(s) to print for `err`: `error: …` and an optional `hint: …`. */
export function describeError(err: unknown): { message: string; hint?: string } {
  if (err instanceof LoraforgeError) return { message: err.message, hint: err.hint };
  if (err instanceof Error) {
    const { code, path } = err as SystemError;
    const firstLine = err.message.split('\n')[0]!;
    // Node names the file in most messages; writes through a descriptor do not.
    const where = path && !firstLine.includes(path) ? ` (${path})` : '';
    if (code && code in SYSTEM_HINTS)
      return { message: firstLine + where, hint: SYSTEM_HINTS[code] };
    if (err instanceof RangeError && /call stack/.test(err.message))
      return {
        message: 'the input is nested or repeated too deeply to process',
        hint: 'this is a bug in loraforge: run again with --debug and report the stack trace',
      };
    return {
      message: `internal error: ${firstLine}${where}`,
      hint: 'this is a bug in loraforge: run again with --debug and report the stack trace',
    };
  }
  return { message: `internal error: ${String(err)}` };
}

/** Writes the error to stderr as one line (plus hint), or with its stack when debugging. */
export function reportError(err: unknown, debug: boolean): void {
  const { message, hint } = describeError(err);
  process.stderr.write(`error: ${message}\n${hint ? `hint: ${hint}\n` : ''}`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
}
