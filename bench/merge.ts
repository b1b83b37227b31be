/**
 * `loraforge merge` of a Qwen2-0.5B-shaped model (or `--arch`'s shape; random bf16 weights, about
 * 1 GB) with an all-linear r = 8 adapter whose B is random (so every projection really changes):
 * seconds and peak RSS of `mergeToFolder`, which streams the merged file tensor by tensor. Each
 * phase runs in its own process so that its peak RSS is its own: `floor` only opens the backend
 * and reads the adapter (what any merge holds), `merge` adds the merge itself.
 *   npm run bench:merge [-- --arch qwen3-0.6b --device cpu|webgpu --threads T --json]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argValue, benchArch, emitJson, printMachine, randomBenchModel, say } from './common.ts';

const device = process.argv.includes('--device')
  ? process.argv[process.argv.indexOf('--device') + 1]!
  : 'cpu';
const threads = argValue('--threads', 2);
const RANK = 8;

/**
 * Runs `body` (module code with `vars` in scope) in a fresh process. From a file rather than
 * `-e`: the CPU backend's worker threads inherit the flags, and `--input-type` fails in a worker.
 */
function child(body: string, vars: Record<string, string>): string {
  const script = join('.tmp', `bench-merge-${process.pid}.mts`);
  const values = Object.entries(vars).map(([k, v]) => `const ${k} = ${JSON.stringify(v)};`);
  writeFileSync(script, [...values, body.replaceAll("'./src/", "'../src/")].join('\n'));
  try {
    return execFileSync(
      process.execPath,
      ['--experimental-wasm-relaxed-simd', '--import', 'tsx', script],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
  } finally {
    rmSync(script, { force: true });
  }
}

/** The adapter (written once beside the model): PEFT's init for A, a random B, all-linear r = 8. */
function benchAdapter(modelDir: string): string {
  const adapterDir = `${modelDir}-lora-r${RANK}`;
  if (existsSync(join(adapterDir, 'adapter_model.safetensors'))) return adapterDir;
  say(`writing ${adapterDir} (all-linear r=${RANK}, random B; once)...`);
  child(
    `import { selectBackend } from './src/engine/select-backend.ts';
    import { Tensor } from './src/engine/tensor.ts';
    import { loadModel } from './src/models/load.ts';
    import { LoraAdapter } from './src/peft/adapter.ts';
    import { makeLoraConfig } from './src/peft/config.ts';
    import { saveAdapter } from './src/peft/io.ts';
    import { Rng } from './src/util/rng.ts';
    await selectBackend({ device: 'cpu' });
    const model = loadModel(modelDir, { dtype: 'bf16' });
    const config = makeLoraConfig({ r: ${RANK}, loraAlpha: ${2 * RANK}, targetModules: 'all-linear' });
    const adapter = LoraAdapter.create(model, config, 1);
    const rng = new Rng(2);
    for (const pair of adapter.modules.values()) {
      const b = new Float32Array(pair.b.size).map(() => rng.normal(0, 0.01));
      const shape = pair.b.shape;
      pair.b.dispose();
      pair.b = Tensor.from(b, shape).keep();
    }
    await saveAdapter(adapterDir, adapter);`,
    { modelDir, adapterDir },
  );
  return adapterDir;
}

/** One phase in its own process: seconds of `run` and the process's peak RSS. */
function phase(
  run: string,
  vars: Record<string, string>,
): { seconds: number; peakRssBytes: number } {
  const stdout = child(
    `import { selectBackend } from './src/engine/select-backend.ts';
    import { loadDecoderConfig } from './src/models/load.ts';
    import { loadAdapterForConfig } from './src/peft/io.ts';
    import { mergeToFolder } from './src/peft/merge.ts';
    await selectBackend({ device: ${JSON.stringify(device)}, threads: ${threads} });
    const adapter = loadAdapterForConfig(adapterDir, loadDecoderConfig(modelDir));
    const start = performance.now();
    ${run}
    console.log(JSON.stringify({ seconds: (performance.now() - start) / 1000, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));`,
    vars,
  );
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

printMachine();
const arch = benchArch();
const modelDir = randomBenchModel(arch);
const adapterDir = benchAdapter(modelDir);
const outRoot = mkdtempSync(join(tmpdir(), 'lf-bench-merge-'));
const out = join(outRoot, 'merged');
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
try {
  const floor = phase('', { modelDir, adapterDir, out });
  say(`floor (backend + adapter): peak RSS ${mib(floor.peakRssBytes)}`);
  const merge = phase('await mergeToFolder(modelDir, adapter, out);', {
    modelDir,
    adapterDir,
    out,
  });
  const fileBytes = statSync(join(out, 'model.safetensors')).size;
  say(
    `merge (${device}): ${merge.seconds.toFixed(1)} s, peak RSS ${mib(merge.peakRssBytes)}, wrote ${mib(fileBytes)}`,
  );
  const weightBytes = statSync(join(modelDir, 'model.safetensors')).size;
  say(`(bf16 weights in: ${mib(weightBytes)}; target: peak RSS under 600 MB)`);
  emitJson({
    model: `${arch}-shape random bf16`,
    adapter: `all-linear r=${RANK}`,
    device,
    threads,
    weightBytes,
    floor,
    merge: { ...merge, fileBytes },
  });
} finally {
  rmSync(outRoot, { recursive: true, force: true });
}
