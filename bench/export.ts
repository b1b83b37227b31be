/**
 * GGUF export of a Qwen2-0.5B-shaped model (or `--arch`'s shape; random bf16 weights, the tiny chat
 * model's tokenizer padded to the model's vocabulary): seconds and peak RSS per export type. Each
 * export runs in its own process, so its peak RSS is its own (streaming: about one tensor, not the
 * model).
 *   npm run bench:export [-- --types f16,q4_k_m --arch qwen3-0.6b --json]
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchArch, emitJson, printMachine, randomBenchModel, say } from './common.ts';

const typesArg = process.argv.indexOf('--types');
const types = typesArg >= 0 ? process.argv[typesArg + 1]!.split(',') : ['f16', 'q4_k_m'];

printMachine();
const modelDir = randomBenchModel();
for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
  copyFileSync(join('assets', 'tiny-chat', file), join(modelDir, file));
}
const outDir = mkdtempSync(join(tmpdir(), 'lf-bench-export-'));
const results: Record<string, { seconds: number; peakRssBytes: number; fileBytes: number }> = {};
try {
  for (const type of types) {
    const out = join(outDir, `model-${type}.gguf`);
    const script = `import { runExport } from './src/export/run.ts';
      const start = performance.now();
      await runExport({ modelDir: ${JSON.stringify(modelDir)}, format: 'gguf', type: ${JSON.stringify(type)}, out: ${JSON.stringify(out)} });
      console.log(JSON.stringify({ seconds: (performance.now() - start) / 1000, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));`;
    const stdout = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
      },
    );
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    results[type] = { ...r, fileBytes: statSync(out).size };
    rmSync(out);
    say(
      `${type.padEnd(7)} ${r.seconds.toFixed(1)} s, peak RSS ${(r.peakRssBytes / 2 ** 30).toFixed(2)} GiB, file ${(results[type]!.fileBytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
} finally {
  rmSync(outDir, { recursive: true, force: true });
}
const weightBytes = statSync(join(modelDir, 'model.safetensors')).size;
say(`(bf16 weights in: ${(weightBytes / 2 ** 20).toFixed(0)} MiB)`);
emitJson({ model: `${benchArch()}-shape random bf16`, weightBytes, results });
