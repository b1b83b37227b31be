// `npm run build` (and prepack): dist/ = src/ compiled by tsc (tsconfig.build.json), ESM .js and
// .d.ts, one file per module in src/'s layout. Keeping the layout (no bundling) keeps every path
// the code finds from import.meta.url valid: the kernels at ../../../build/*.wasm and the pool's
// ./worker.mjs resolve the same from src/ (under tsx) and from dist/. tsc is also the only tool
// that writes the declarations, so one tool does both.
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const dist = join(root, 'dist');

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

// The kernels (skipped when up to date): the package ships build/*.wasm and the native variants
// of this platform under prebuilds/ (without a C++ compiler, one line, and the package falls
// back to wasm).
execFileSync(process.execPath, [join(root, 'scripts/build-wasm.mjs')], { stdio: 'inherit' });
execFileSync(process.execPath, [join(root, 'scripts/build-native.mjs'), '--if-possible'], {
  stdio: 'inherit',
});
// Linux arm64 (Graviton, Ampere, Raspberry Pi 5) too, where the cross compiler is installed: the
// NEON variant passes the golden suites under qemu (scripts/test-arm64.sh).
if (process.platform === 'linux' && process.arch === 'x64') {
  execFileSync(
    process.execPath,
    [join(root, 'scripts/build-native.mjs'), '--arch', 'arm64', '--if-possible'],
    { stdio: 'inherit' },
  );
}

rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], {
  stdio: 'inherit',
});

// Plain-JS modules (the pool worker) are not compiled; copy them beside their importers. The
// tokenizer worker's tsx bootstrap is for checkouts only: dist/ runs the compiled service.
const checkoutOnly = new Set(['serve/tokenize-worker.mjs']);
for (const file of walk(src).filter((f) => f.endsWith('.mjs'))) {
  if (checkoutOnly.has(relative(src, file))) continue;
  cpSync(file, join(dist, relative(src, file)));
}

// tsc rewrites `./x.ts` to `./x.js` in the JavaScript but not in the declarations; consumers
// resolving with node16/nodenext need the `.js` form there too.
const relativeTs = /((?:from |import\()['"]\.{1,2}\/[^'"]*)\.ts(['"])/g;
for (const file of walk(dist).filter((f) => f.endsWith('.d.ts'))) {
  const text = readFileSync(file, 'utf8');
  const fixed = text.replace(relativeTs, '$1.js$2');
  if (fixed !== text) writeFileSync(file, fixed);
}
