/** Shared benchmark plumbing: machine description, JSON mode, the random models of `--arch`. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import '../src/engine/cpu/node-host.ts';
import { CpuBackend } from '../src/engine/cpu/backend.ts';
import { loadNativeAddon } from '../src/engine/native/addon.ts';
import { NativeBackend } from '../src/engine/native/backend.ts';
import { RANDOM_MODEL_SHAPES } from '../src/models/random.ts';

export const jsonMode = process.argv.includes('--json');

export function say(line: string): void {
  if (!jsonMode) console.log(line);
}

export function machine(): { cpu: string; cores: number; memoryGiB: number; node: string } {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function printMachine(): void {
  const m = machine();
  say(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}`);
}

/** Peak resident set size of this process so far, in bytes. */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

export function emitJson(result: Record<string, unknown>): void {
  if (jsonMode) console.log(JSON.stringify({ machine: machine(), ...result }));
}

/** The model shapes `--arch` picks (src/models/random.ts). */
export const BENCH_ARCHS = Object.keys(RANDOM_MODEL_SHAPES);
export type BenchArch = string;

/** `--arch NAME` (default qwen2-0.5b). */
export function benchArch(): BenchArch {
  const i = process.argv.indexOf('--arch');
  const name = i >= 0 ? process.argv[i + 1]! : 'qwen2-0.5b';
  if (!BENCH_ARCHS.includes(name)) {
    throw new Error(`--arch ${name}: choose ${BENCH_ARCHS.join(', ')}`);
  }
  return name;
}

/**
 * Writes a random bf16 model of `arch`'s shape into `dir` (a child process: its memory is not
 * ours); `fast` repeats one random block instead of drawing every value (make-random-model.ts).
 */
export function writeRandomBenchModel(arch: BenchArch, dir: string, fast = false): void {
  const script = join(import.meta.dirname, '..', 'scripts', 'make-random-model.ts');
  const args = [
    '--import',
    'tsx',
    script,
    '--arch',
    arch,
    '--out',
    dir,
    ...(fast ? ['--fast'] : []),
  ];
  execFileSync(process.execPath, args, { stdio: 'inherit' });
}

/** A model of `arch`'s shape with random bf16 weights (written once, reused by later runs). */
export function randomBenchModel(arch: BenchArch = benchArch()): string {
  const dir = join('.tmp', 'bench-models', `${arch}-random-bf16`);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    say(`writing ${dir} (${arch} shape, random bf16 weights; once)...`);
    writeRandomBenchModel(arch, dir);
  }
  return dir;
}

export function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** A CPU backend the benchmarks compare: native code (the addon) or WebAssembly. */
export type CpuBackendName = 'native' | 'wasm';

/**
 * `--backends native,wasm` (either order, or one of them): the CPU backends to run side by side;
 * default both when this platform has a native build, else wasm alone.
 */
export function cpuBackendNames(): CpuBackendName[] {
  const i = process.argv.indexOf('--backends');
  if (i < 0) return loadNativeAddon().addon ? ['native', 'wasm'] : ['wasm'];
  const names = process.argv[i + 1]!.split(',');
  for (const name of names)
    if (name !== 'native' && name !== 'wasm') throw new Error(`--backends: unknown '${name}'`);
  return names as CpuBackendName[];
}

/**
 * The backend of that name on `threads` threads (native: the best variant; exact GEMM, or with
 * `--bf16` (alias `--bf16-gemm`) bf16 products where the CPU has them, as `loraforge train`'s
 * `bf16: true` and HF's `bf16=True` autocast multiply).
 */
export async function createCpuBackend(
  name: CpuBackendName,
  threads: number,
): Promise<CpuBackend | NativeBackend> {
  if (name === 'wasm') return CpuBackend.create({ threads });
  const bf16 = process.argv.includes('--bf16') || process.argv.includes('--bf16-gemm');
  const gemmPrecision = bf16 ? 'bf16' : 'exact';
  return NativeBackend.create({ threads, gemmPrecision });
}

/**
 * Runs this benchmark once per backend, each in a child process of its own (so each has its own
 * peak RSS), with this run's arguments plus `--backends NAME --json` and `extraArgs`; returns
 * each child's JSON result. The children's progress goes to stderr.
 */
export function runPerBackend(
  names: CpuBackendName[],
  extraArgs: string[] = [],
): Record<string, Record<string, unknown>> {
  const own = process.argv.slice(2);
  const drop = new Set(['--json']);
  const args: string[] = [];
  for (let i = 0; i < own.length; i++) {
    if (own[i] === '--backends') i++;
    else if (!drop.has(own[i]!)) args.push(own[i]!);
  }
  const results: Record<string, Record<string, unknown>> = {};
  for (const name of names) {
    say(`-- ${name} (child process)`);
    const out = execFileSync(
      process.execPath,
      [...process.execArgv, process.argv[1]!, ...args, ...extraArgs, '--backends', name, '--json'],
      { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    results[name] = JSON.parse(out.trimEnd().split('\n').at(-1)!) as Record<string, unknown>;
  }
  return results;
}
