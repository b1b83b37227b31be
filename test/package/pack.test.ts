/**
 * loraforge as a user gets it: `npm pack`, the tarball installed into an empty folder with
 * `npm install --omit=dev --ignore-scripts` (no devDependencies such as tsx, no install
 * scripts), then the CLI, the examples/api programs (compiled by tsc against the shipped .d.ts
 * and run as plain JavaScript), a strict TypeScript consumer and a browser bundle of
 * `loraforge/web` made by esbuild with no configuration. Runs on the Node that runs the test:
 * npm, npx and the programs all get that Node first on PATH (.ci/run repeats this on 22/24/26).
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { after, before, test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);
const TSC = require.resolve('typescript/bin/tsc');
const ESBUILD = join(dirname(require.resolve('esbuild/package.json')), 'bin', 'esbuild');
const MAX_TARBALL_BYTES = 15 * 2 ** 20;
/** This platform's native builds, as `npm run build` (prepack) leaves them for the tarball. */
const PREBUILDS = join('prebuilds', `${process.platform}-${process.arch}`);

const work = mkdtempSync(join(tmpdir(), 'lf-pack-'));
const app = join(work, 'app');
const installed = join(app, 'node_modules', 'loraforge');
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH}` };

/** Runs a command (this Node first on PATH); fails the test with its output when it fails. */
function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const r = spawnSync(command, args, {
    cwd: app,
    env,
    encoding: 'utf8',
    timeout: 300_000,
    ...options,
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  assert.equal(r.status, 0, `${command} ${args.join(' ')} failed:\n${output}`);
  return String(r.stdout);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

let tarballBytes = 0;

before(() => {
  // The build (prepack's job) runs on its own: its output would mix with pack's JSON.
  run('npm', ['run', 'build'], { cwd: ROOT });
  const [packed] = JSON.parse(
    run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT }),
  ) as { filename: string; size: number }[];
  tarballBytes = packed!.size;
  console.log(`tarball ${packed!.filename}: ${(tarballBytes / 2 ** 20).toFixed(2)} MiB`);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{ "private": true, "type": "module" }\n');
  run('npm', [
    'install',
    '--omit=dev',
    '--ignore-scripts',
    '--prefer-offline',
    '--no-audit',
    '--no-fund',
    join(work, packed!.filename),
  ]);
});

after(() => rmSync(work, { recursive: true, force: true }));

test(`the tarball is under ${MAX_TARBALL_BYTES / 2 ** 20} MiB`, () => {
  assert.ok(tarballBytes > 0 && tarballBytes < MAX_TARBALL_BYTES, `${tarballBytes} bytes`);
});

/** Why the native checks cannot run here (no compiler made the binaries); never under CI. */
function nativeSkip(): string | false {
  if (process.env.CI || existsSync(join(ROOT, PREBUILDS, 'variants.json'))) return false;
  return `no ${PREBUILDS}/ in the checkout (npm run build:native needs a C++ compiler)`;
}

test('the package ships compiled JavaScript, declarations and kernels, and no TypeScript', () => {
  const files = filesUnder(installed).map((f) => relative(installed, f));
  for (const needed of [
    'dist/index.js',
    'dist/index.d.ts',
    'dist/web.js',
    'dist/engine/cpu/worker.mjs',
    'build/loraforge.wasm',
    'build/loraforge-relaxed.wasm',
    'build/loraforge-wide.wasm',
    'assets/tiny-chat/model.safetensors',
    'bin/loraforge.js',
    'LICENSE',
  ]) {
    assert.ok(files.includes(needed), `${needed} is missing`);
  }
  const typescript = files.filter((f) => /\.[cm]?tsx?$/.test(f) && !/\.d\.[cm]?ts$/.test(f));
  const sourceFiles = typescript.filter((f) => !f.startsWith('examples/'));
  assert.deepEqual(sourceFiles, [], 'TypeScript sources in the package (only examples may be)');
  assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'tsx was installed');
  const needsTsx = files.filter(
    (f) =>
      /\.m?js$/.test(f) && /['"]tsx(\/[^'"]*)?['"]/.test(readFileSync(join(installed, f), 'utf8')),
  );
  // bin/loraforge.js names tsx only for a checkout of the repository (where src/ exists).
  assert.deepEqual(needsTsx, ['bin/loraforge.js']);
  assert.ok(!existsSync(join(installed, 'src')), 'src/ shipped: the CLI would look for tsx');
});

test('npx loraforge generate prints text', () => {
  const out = run('npx', [
    'loraforge',
    'generate',
    '--model',
    'node_modules/loraforge/assets/tiny-chat',
    '--prompt',
    'Who are you?',
    '--max-new-tokens',
    '12',
    '--device',
    'cpu',
  ]);
  assert.match(out, /\p{L}{2,}/u, `no text in ${JSON.stringify(out)}`);
});

/**
 * Writes a tsconfig for a strict ESM user; `emit` compiles to out/. Node resolution (nodenext)
 * needs skipLibCheck: a dependency's declarations (@huggingface/tokenizers) use extensionless
 * imports; loraforge's own declarations are checked with `bundler` resolution instead.
 */
function tsconfig(
  name: string,
  include: string[],
  resolution: 'nodenext' | 'bundler',
  emit = false,
): string {
  const path = join(app, name);
  const compilerOptions = {
    strict: true,
    noUnusedLocals: true,
    target: 'ES2022',
    module: resolution === 'nodenext' ? 'nodenext' : 'esnext',
    moduleResolution: resolution,
    lib: ['ES2022', 'DOM'],
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules', '@types')],
    skipLibCheck: resolution === 'nodenext',
    ...(emit
      ? { outDir: 'out', rootDir: '.', rewriteRelativeImportExtensions: true }
      : { noEmit: true }),
  };
  writeFileSync(path, JSON.stringify({ compilerOptions, include }, null, 2));
  return path;
}

test('examples/api: train an adapter, chat with it and serve it, as compiled JavaScript', () => {
  cpSync(join(installed, 'examples', 'api'), join(app, 'api'), { recursive: true });
  run(process.execPath, [TSC, '-p', tsconfig('tsconfig.examples.json', ['api'], 'nodenext', true)]);
  const adapter = join(app, 'runs', 'identity');
  const trained = run(process.execPath, ['out/api/train.js', adapter, '5']);
  assert.match(trained, /adapter saved to .* after 5 steps/);
  assert.ok(existsSync(join(adapter, 'adapter_model.safetensors')), 'no adapter saved');
  const chat = run(process.execPath, ['out/api/chat.js', adapter, 'Who are you?']);
  assert.match(chat, /\p{L}{2,}[\s\S]*again, as a Promise/u);
  const served = run(process.execPath, ['out/api/serve.js', adapter]);
  assert.match(served, /\p{L}{2,}/u);
});

test('a strict TypeScript consumer type-checks against the shipped declarations', () => {
  cpSync(join(ROOT, 'test', 'package', 'consumer', 'consumer.ts'), join(app, 'consumer.ts'));
  for (const resolution of ['nodenext', 'bundler'] as const) {
    const config = tsconfig(`tsconfig.${resolution}.json`, ['consumer.ts'], resolution);
    run(process.execPath, [TSC, '-p', config]);
  }
});

test(
  'the installed package runs on the native CPU backend (prebuilt, no install script)',
  {
    skip: nativeSkip(),
  },
  () => {
    assert.ok(existsSync(join(installed, PREBUILDS, 'variants.json')), `${PREBUILDS} not shipped`);
    const out = run('npx', ['loraforge', 'info', '--device', 'cpu']);
    assert.match(out, /^device: +cpu \(native [\w-]+, \d+ threads?\)$/m, out);
  },
);

test('without prebuilds/ the installed package runs on wasm with a one-line notice', () => {
  rmSync(join(installed, 'prebuilds'), { recursive: true, force: true });
  const r = spawnSync('npx', ['loraforge', 'info', '--device', 'cpu'], {
    cwd: app,
    env,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^device: +cpu \(wasm [^)]*\)$/m, r.stdout);
  const notice = r.stderr.trimEnd().split('\n');
  assert.equal(notice.length, 1, r.stderr);
  assert.match(notice[0]!, /CPU backend is WebAssembly.*npm run build:native/);
});

test('a page importing loraforge/web bundles with esbuild and no configuration', () => {
  writeFileSync(
    join(app, 'page.js'),
    "import * as loraforge from 'loraforge/web';\nconsole.log(Object.keys(loraforge));\n",
  );
  run(ESBUILD, ['page.js', '--bundle', '--outfile=page.bundle.js', '--log-level=warning']);
  const bundle = readFileSync(join(app, 'page.bundle.js'), 'utf8');
  assert.ok(bundle.includes('loadModelFiles'), 'the bundle lacks the web API');
  assert.ok(
    !/prebuilds|variants\.json/.test(bundle),
    'the native loader entered the browser bundle',
  );
});
