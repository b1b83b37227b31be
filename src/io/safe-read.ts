/**
 * Reading files loraforge did not write (configs, adapters, datasets, a client's adapter folder)
 * without trusting them: the path must be a regular file (a FIFO would block the read forever,
 * `/dev/zero` would never end), no larger than a cap given per kind of file, and, where a folder
 * confines it, not a symlink leading out of that folder. Errors name the file, never its bytes.
 */
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readSync,
  realpathSync,
  type Stats,
} from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import { findJsonSyntaxError } from '../util/json-syntax.ts';
import { formatBytes } from '../util/format.ts';
import { LoraforgeError } from '../util/errors.ts';

const MiB = 1024 * 1024;

/** Size caps by kind of file: far above real files, far below what would exhaust memory. */
export const READ_LIMITS = {
  /** config.json, adapter_config.json, tokenizer_config.json, trainer_state.json, YAML configs. */
  config: 64 * MiB,
  /** tokenizer.json (the largest real ones are ~35 MB). */
  tokenizer: 512 * MiB,
  /** A dataset file, read as one string (V8 strings stop at ~512 M characters). */
  dataset: 512 * MiB,
  /** An adapter's weights, read whole by the server. */
  adapterWeights: 2048 * MiB,
} as const;

export interface SafeReadOptions {
  maxBytes: number;
  /** Real path of a folder the file must stay inside once symlinks are resolved. */
  within?: string;
}

// O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, forever.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return 'a folder';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

function checkStat(path: string, stat: Stats, maxBytes: number): void {
  if (!stat.isFile())
    throw new LoraforgeError(`${path}: is ${kindOf(stat)}, expected a regular file`);
  if (stat.size > maxBytes) {
    throw new LoraforgeError(
      `${path}: ${formatBytes(stat.size)} is more than the ${formatBytes(maxBytes)} this kind of file may have`,
      'is it the right file?',
    );
  }
}

function checkWithin(path: string, real: string, within: string): void {
  const rel = relative(within, real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    throw new LoraforgeError(`${path}: links outside the folder it must stay in`);
}

function openError(path: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new LoraforgeError(`${path}: file not found`);
  if (code === 'EACCES') return new LoraforgeError(`${path}: permission denied`);
  return err;
}

/** Opens `path` for reading after the checks above; returns the descriptor and the size. */
export function openChecked(path: string, opts: SafeReadOptions): { fd: number; size: number } {
  let fd: number;
  try {
    if (opts.within) checkWithin(path, realpathSync(path), opts.within);
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(path, err);
  }
  try {
    const stat = fstatSync(fd);
    checkStat(path, stat, opts.maxBytes);
    return { fd, size: stat.size };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The bytes of an untrusted file (see the module comment). */
export function readChecked(path: string, opts: SafeReadOptions): Uint8Array {
  const { fd, size } = openChecked(path, opts);
  try {
    const bytes = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, bytes, done, size - done, done);
      if (n === 0) break;
      done += n;
    }
    return bytes.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

/** readChecked without blocking the event loop (the server's path). */
export async function readCheckedAsync(path: string, opts: SafeReadOptions): Promise<Uint8Array> {
  let handle;
  try {
    if (opts.within) checkWithin(path, await realpath(path), opts.within);
    handle = await open(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(path, err);
  }
  try {
    const stat = await handle.stat();
    checkStat(path, stat, opts.maxBytes);
    const bytes = new Uint8Array(stat.size);
    let done = 0;
    while (done < stat.size) {
      const { bytesRead } = await handle.read(bytes, done, stat.size - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return bytes.subarray(0, done);
  } finally {
    await handle.close();
  }
}

/**
 * Strict UTF-8: invalid bytes are an error naming the file and the byte offset (a silent U+FFFD
 * would train on, or answer with, text the user never wrote). A leading BOM is dropped.
 */
export function decodeUtf8(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    throw new LoraforgeError(
      `${path}: invalid UTF-8 at byte ${offset}`,
      'save the file as UTF-8 (most editors offer it under "encoding")',
    );
  }
}

/** Offset of the first byte that starts no well-formed UTF-8 sequence (-1: all valid). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    // Unicode's table of well-formed sequences: the second byte's range depends on the first.
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f; // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    for (let k = 1; k <= need; k++) {
      const d = bytes[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** The UTF-8 text of an untrusted file. */
export function readTextChecked(path: string, opts: SafeReadOptions): string {
  return decodeUtf8(readChecked(path, opts), path);
}

/** JSON.parse whose error names line and column, never the text (it may be any file at all). */
export function parseJsonChecked(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const found = findJsonSyntaxError(text);
    const at = found ? lineColumn(text, found.offset) : undefined;
    throw new LoraforgeError(
      `${path}: invalid JSON${at ? ` at line ${at.line}, column ${at.column}` : ''}${found ? ` (${found.problem})` : ''}`,
      'fix or re-download the file',
    );
  }
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}
