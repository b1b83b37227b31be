// Bundles the GPU benchmark's entries (bench/train.ts, bench/gemm.ts) with esbuild into a folder that runs with a bare `node`, without node_modules or tsx: scripts/device/prepare.sh
// calls it and lays out the rest of that folder (see there).
//   node scripts/device/bundle.mjs <outdir>
// The CPU engine finds its worker and its wasm build relative to its own module
// (src/engine/cpu/*.ts use `import.meta.url`); in the bundle that URL is replaced, in those files
// only, by one standing for `<outdir>/src/engine/cpu/`, where prepare.sh copies worker.mjs and
// from which `../../../build/` is `<outdir>/build/`. The `webgpu` package (Dawn's native module)
// stays external: node loads it from `<outdir>/node_modules/webgpu`.
import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';

const outdir = process.argv[2];
if (!outdir) {
  console.error('usage: node scripts/device/bundle.mjs <outdir>');
  process.exit(2);
}

const CPU_URL = '__loraforgeCpuModuleUrl';
let rewritten = 0;
const cpuModuleUrl = {
  name: 'cpu-module-url',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/]engine[\\/]cpu[\\/][^\\/]+\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const count = source.split('import.meta.url').length - 1;
      rewritten += count;
      return { contents: source.replaceAll('import.meta.url', CPU_URL), loader: 'ts' };
    });
  },
};

const result = await build({
  entryPoints: { 'bench-train': 'bench/train.ts', 'bench-gemm': 'bench/gemm.ts' },
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['webgpu'],
  banner: {
    js: [
      `const ${CPU_URL} = new URL('./src/engine/cpu/', import.meta.url).href;`,
      // Bundled CommonJS dependencies may call require().
      `import { createRequire as __loraforgeCreateRequire } from 'node:module';`,
      `const require = __loraforgeCreateRequire(import.meta.url);`,
    ].join('\n'),
  },
  plugins: [cpuModuleUrl],
  metafile: true,
  logLevel: 'warning',
});
// runtime.ts (its build dir) and pool.ts (its worker) use it once each (per entry).
if (rewritten < 2) {
  console.error(
    `bundle.mjs: expected import.meta.url in src/engine/cpu/{runtime,pool}.ts, found ${rewritten}`,
  );
  process.exit(1);
}
for (const [file, { bytes }] of Object.entries(result.metafile.outputs)) {
  console.log(`${file}: ${(bytes / 1024).toFixed(0)} KiB`);
}
