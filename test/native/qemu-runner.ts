/**
 * The native kernels built for arm64 (NEON) and run under qemu-aarch64 from an x86-64 machine:
 * kernel-runner.cc linked statically with native/src/kernels, one process per call (its protocol
 * is in kernel-runner.cc). Node cannot load an arm64 addon here, so this is how the NEON code
 * paths are checked against the wasm exports.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const COMPILER = 'aarch64-linux-gnu-g++';
const EMULATOR = 'qemu-aarch64';
const runnerSource = join(root, 'test/native/kernel-runner.cc');
const runnerPath = join(root, 'build/native-test/kernel-runner-neon');

/** A buffer argument (its index among the call's buffers) or a number. */
export type RunnerArg = { buffer: number } | number;

export interface RunnerCall {
  name: string;
  buffers: Uint8Array[];
  args: RunnerArg[];
  start: number;
  end: number;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(cc|h)$/.test(entry.name) ? [path] : [];
  });
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -Infinity;
  }
}

function available(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Builds the runner when a kernel source is newer; returns why it cannot, or null when ready. */
export function buildNeonRunner(): string | null {
  for (const command of [COMPILER, EMULATOR])
    if (!available(command)) return `no ${command} (Debian: g++-aarch64-linux-gnu, qemu-user)`;
  const inputs = [
    ...sources(join(root, 'native/src/kernels')),
    join(root, 'native/src/kernel.h'),
    join(root, 'native/src/registry.cc'),
    runnerSource,
  ];
  if (Math.max(...inputs.map(mtime)) < mtime(runnerPath)) return null;
  mkdirSync(dirname(runnerPath), { recursive: true });
  const units = inputs.filter((path) => path.endsWith('.cc'));
  // The flags of build-native.mjs's neon variant; static, so qemu needs no arm64 libraries.
  const flags = ['-std=c++17', '-O3', '-fno-math-errno', '-march=armv8-a', '-static'];
  const build = spawnSync(COMPILER, [...flags, ...units, '-o', runnerPath], { encoding: 'utf8' });
  return build.status === 0 ? null : `${COMPILER} failed: ${build.stderr}`;
}

/** Runs one call under qemu; returns its buffers' bytes after the call and the kernel's result. */
export function runOnNeon(call: RunnerCall): { buffers: Uint8Array[]; result: number } {
  const name = Buffer.from(call.name);
  const parts: Buffer[] = [u32(name.length), name, u32(call.buffers.length)];
  for (const bytes of call.buffers) {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(bytes.byteLength));
    parts.push(length, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  parts.push(u32(call.args.length));
  for (const arg of call.args) {
    const isBuffer = typeof arg !== 'number';
    parts.push(Buffer.of(isBuffer ? 1 : 0), f64(isBuffer ? arg.buffer : arg));
  }
  parts.push(f64(call.start), f64(call.end));
  const run = spawnSync(EMULATOR, [runnerPath], {
    input: Buffer.concat(parts),
    maxBuffer: 1 << 28,
  });
  if (run.status !== 0) throw new Error(`${call.name} under qemu: ${run.stderr.toString()}`);
  const out = run.stdout;
  let offset = 0;
  const buffers = call.buffers.map((bytes) => {
    const copy = new Uint8Array(out.subarray(offset, offset + bytes.byteLength));
    offset += bytes.byteLength;
    return copy;
  });
  return { buffers, result: out.readDoubleLE(offset) };
}

function u32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
}

function f64(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return bytes;
}
