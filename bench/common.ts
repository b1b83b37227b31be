/** Shared benchmark plumbing: machine description, JSON mode, the random models of `--arch`. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';

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

/** The model shapes `--arch` picks (the config constants of src/models/random.ts). */
export const BENCH_ARCHS = {
  'qwen2-0.5b': 'QWEN2_0_5B_CONFIG',
  'qwen3-0.6b': 'QWEN3_0_6B_CONFIG',
  'gemma3-1b': 'GEMMA3_1B_CONFIG',
  'phi4-mini': 'PHI4_MINI_CONFIG',
} as const;
export type BenchArch = keyof typeof BENCH_ARCHS;

/** `--arch NAME` (default qwen2-0.5b). */
export function benchArch(): BenchArch {
  const i = process.argv.indexOf('--arch');
  const name = i >= 0 ? process.argv[i + 1]! : 'qwen2-0.5b';
  if (!(name in BENCH_ARCHS)) {
    throw new Error(`--arch ${name}: choose ${Object.keys(BENCH_ARCHS).join(', ')}`);
  }
  return name as BenchArch;
}

/** A model of `arch`'s shape with random bf16 weights (written once, reused by later runs). */
export function randomBenchModel(arch: BenchArch = benchArch()): string {
  const dir = join('.tmp', 'bench-models', `${arch}-random-bf16`);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    say(`writing ${dir} (${arch} shape, random bf16 weights; once)...`);
    // In a child process, so writing 1 GB does not count in this benchmark's peak RSS.
    const script = `import { writeRandomModel, ${BENCH_ARCHS[arch]} } from './src/models/random.ts';
      writeRandomModel(${JSON.stringify(dir)}, ${BENCH_ARCHS[arch]}, { dtype: 'BF16', seed: 0 });`;
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: 'inherit',
    });
  }
  return dir;
}

export function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
