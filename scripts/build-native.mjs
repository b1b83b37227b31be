// Builds the native CPU backend: every native/src/**/*.cc compiled once per ISA variant and linked
// into prebuilds/<platform>-<arch>/loraforge-<variant>.node (one self-contained Node-API module
// per variant, as ggml builds one CPU library per ISA: a variant's code never links with another's,
// so an AVX-512 instruction cannot leak into the build an AVX2 machine loads). The loader
// (src/engine/native/addon.ts) asks the baseline build for the CPU's features and loads the best.
//   node scripts/build-native.mjs [--arch x64|arm64] [--if-possible] [--force]
// --arch arm64 cross-compiles with aarch64-linux-gnu-g++ (Debian's g++-aarch64-linux-gnu).
// --if-possible: exit 0 with one line when there is no compiler (npm test on a machine without
// g++ then runs on the wasm backend). Skips a variant whose output is newer than every source.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = join(root, 'native/src');
const args = process.argv.slice(2);
const ifPossible = args.includes('--if-possible');
const force = args.includes('--force');
const arch = args.includes('--arch') ? args[args.indexOf('--arch') + 1] : process.arch;

// Each x64 level adds its switches to the one below it (AVX-512 implies AVX2 and FMA).
const AVX2_FLAGS = ['-march=x86-64', '-mavx2', '-mfma', '-mf16c', '-mbmi2'];
const AVX512_FLAGS = [...AVX2_FLAGS, '-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq'];

/**
 * The variants of each architecture, best last; `flags` are the compiler's ISA switches, `cpu` the
 * features (as the addon's cpuFeatures() names them) a CPU needs to run the variant. The build
 * writes the names and features, in this order, to variants.json beside the binaries: the loader
 * picks from that list.
 */
export const VARIANTS = {
  x64: [
    { name: 'x86-64', cpu: [], flags: ['-march=x86-64', '-mtune=generic'] },
    { name: 'avx2', cpu: ['avx2'], flags: AVX2_FLAGS },
    { name: 'avx512', cpu: ['avx2', 'avx512f'], flags: AVX512_FLAGS },
    {
      name: 'avx512bf16',
      cpu: ['avx2', 'avx512f', 'avx512bf16'],
      flags: [...AVX512_FLAGS, '-mavx512bf16'],
    },
  ],
  arm64: [{ name: 'neon', cpu: [], flags: ['-march=armv8-a'] }],
};

const compiler = arch === process.arch ? process.env.CXX || 'g++' : 'aarch64-linux-gnu-g++';
const outDir = join(root, 'prebuilds', `${process.platform}-${arch}`);

function hasCompiler() {
  try {
    execFileSync(compiler, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Where node_api.h is: beside this Node, or the system's headers. */
function nodeIncludeDir() {
  const candidates = [
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
  ];
  const found = candidates.find((dir) => existsSync(join(dir, 'node_api.h')));
  if (!found) throw new Error(`node_api.h not found in ${candidates.join(' or ')}`);
  return found;
}

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(cc|h)$/.test(entry.name) ? [path] : [];
  });
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -Infinity;
  }
}

function run(command, argv) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`)),
    );
  });
}

/** Runs the jobs at most `limit` at a time. */
async function pooled(jobs, limit) {
  const queue = [...jobs];
  const lanes = Array.from({ length: limit }, async () => {
    while (queue.length) await queue.shift()();
  });
  await Promise.all(lanes);
}

async function main() {
  const variants = VARIANTS[arch];
  if (!variants) throw new Error(`no native variants for architecture ${arch}`);
  if (!hasCompiler()) {
    if (ifPossible) {
      console.log(`build-native: no ${compiler}; the CPU backend will be WebAssembly`);
      return;
    }
    throw new Error(`${compiler} not found: install a C++ compiler (Debian: apt install g++)`);
  }
  const all = sources(sourceDir);
  const units = all.filter((path) => path.endsWith('.cc'));
  const newest = Math.max(...all.map(mtime), mtime(fileURLToPath(import.meta.url)));
  const include = nodeIncludeDir();
  const stale = variants.filter(
    (v) => force || mtime(join(outDir, `loraforge-${v.name}.node`)) < newest,
  );
  mkdirSync(outDir, { recursive: true });
  const manifest = JSON.stringify(variants.map(({ name, cpu }) => ({ name, cpu })));
  writeFileSync(join(outDir, 'variants.json'), `${manifest}\n`);
  if (stale.length === 0) return;
  const objDir = join(root, 'build', 'native-obj', `${process.platform}-${arch}`);
  const common = [
    '-std=c++17',
    '-O3',
    '-fPIC',
    '-fvisibility=hidden',
    '-fno-math-errno',
    `-I${include}`,
  ];
  const compiles = [];
  for (const variant of stale) {
    mkdirSync(join(objDir, variant.name), { recursive: true });
    for (const unit of units) {
      const obj = join(
        objDir,
        variant.name,
        relative(sourceDir, unit).replace(/[/\\]/g, '__') + '.o',
      );
      const defines = [
        `-DLF_VARIANT="${variant.name}"`,
        `-DNODE_GYP_MODULE_NAME=loraforge_${variant.name.replace(/-/g, '_')}`,
      ];
      compiles.push(() =>
        run(compiler, [...common, ...variant.flags, ...defines, '-c', unit, '-o', obj]),
      );
    }
  }
  const started = Date.now();
  await pooled(compiles, availableParallelism());
  for (const variant of stale) {
    const objs = units.map((unit) =>
      join(objDir, variant.name, relative(sourceDir, unit).replace(/[/\\]/g, '__') + '.o'),
    );
    const out = join(outDir, `loraforge-${variant.name}.node`);
    const tmp = `${out}.tmp`;
    // libstdc++ and libgcc linked in: the prebuilt binary runs on any glibc Linux of its arch.
    await run(compiler, [
      '-shared',
      '-pthread',
      '-static-libstdc++',
      '-static-libgcc',
      '-o',
      tmp,
      ...objs,
    ]);
    renameSync(tmp, out);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `build-native: ${stale.map((v) => v.name).join(', ')} → ${relative(root, outDir)}/ (${seconds} s)`,
  );
}

main().catch((err) => {
  console.error(`build-native: ${err.message}`);
  process.exit(1);
});
