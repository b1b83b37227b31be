/** Shared benchmark plumbing: machine description, JSON mode, the 0.5B-shaped random model. */
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

/** A Qwen2-0.5B-shaped model with random bf16 weights (written once, reused by later runs). */
export function randomQwen05B(): string {
  const dir = join('.tmp', 'bench-models', 'qwen2-0.5b-random-bf16');
  if (!existsSync(join(dir, 'model.safetensors'))) {
    say(`writing ${dir} (Qwen2-0.5B shape, random bf16 weights; once)...`);
    // In a child process, so writing 1 GB does not count in this benchmark's peak RSS.
    const script = `import { writeRandomModel, QWEN2_0_5B_CONFIG } from './src/models/random.ts';
      writeRandomModel(${JSON.stringify(dir)}, QWEN2_0_5B_CONFIG, { dtype: 'BF16', seed: 0 });`;
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
