// Compiles every src/engine/cpu/assembly/*.ts as entry files of ONE AssemblyScript module, three times:
//   build/loraforge.wasm          SIMD128 (multiply + add)
//   build/loraforge-relaxed.wasm  relaxed SIMD (kernels pick f32x4.relaxed_madd via ASC_FEATURE_RELAXED_SIMD)
//   build/loraforge-wide.wasm     relaxed SIMD with a 6-row GEMM tile, for V8's 256-bit revectorizer
// Both import a shared memory (env.memory) that the runtime creates; the module must have no data
// segments and no start function so that instantiating it in every worker never writes memory.
// Skips the build when both outputs are newer than every source (runs on postinstall and before tests).
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = join(root, 'src/engine/cpu/assembly');
const outDir = join(root, 'build');
const MAX_PAGES = 65536; // 4 GiB, the wasm32 limit

const variants = [
  { out: 'loraforge.wasm', features: ['simd', 'threads'], gemmTileRows: 2 },
  { out: 'loraforge-relaxed.wasm', features: ['simd', 'threads', 'relaxed-simd'], gemmTileRows: 2 },
  // For V8's 256-bit revectorizer (Node >= 22 on x64, used only where a start-up self-test finds
  // it exact and faster: src/engine/cpu/wide-kernels.ts): a 6-row GEMM tile.
  { out: 'loraforge-wide.wasm', features: ['simd', 'threads', 'relaxed-simd'], gemmTileRows: 6 },
];

const sources = readdirSync(sourceDir)
  .filter((name) => name.endsWith('.ts'))
  .sort()
  .map((name) => join(sourceDir, name));

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -Infinity;
  }
}

/** The source list of the last build: adding or removing a file (whatever its mtime) triggers a rebuild. */
const manifestPath = join(outDir, 'loraforge.sources.json');
const manifest = JSON.stringify(sources.map((path) => relative(root, path)));

function isUpToDate() {
  let previous;
  try {
    previous = readFileSync(manifestPath, 'utf8');
  } catch {
    return false;
  }
  const newestInput = Math.max(mtime(fileURLToPath(import.meta.url)), ...sources.map(mtime));
  return previous === manifest && variants.every((v) => mtime(join(outDir, v.out)) > newestInput);
}

/** Reads an unsigned LEB128 at `pos`; returns [value, nextPos]. */
function readLeb(bytes, pos) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[pos++];
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, pos];
    shift += 7;
  }
}

/** Rejects modules whose instantiation would write the shared memory (data segments, start function). */
function checkNoMemoryWrites(path) {
  const bytes = readFileSync(path);
  const DATA_SECTION = 11;
  const START_SECTION = 8;
  for (let pos = 8; pos < bytes.length;) {
    const id = bytes[pos];
    const [size, body] = readLeb(bytes, pos + 1);
    if (id === START_SECTION)
      throw new Error(`${path}: has a start function (top-level code in assembly/*.ts?)`);
    if (id === DATA_SECTION && readLeb(bytes, body)[0] > 0) {
      throw new Error(
        `${path}: has data segments (string literals, static arrays or memory.data in assembly/*.ts?); ` +
          'kernels must not own memory',
      );
    }
    pos = body + size;
  }
}

async function compile(variant) {
  // Written beside the target and renamed only once checked, so a rejected module never looks up to date.
  const out = join(outDir, variant.out);
  const tmp = `${out}.tmp`;
  const args = [
    ...sources,
    '--outFile',
    tmp,
    '-O3',
    '--noAssert',
    '--converge',
    '--runtime',
    'stub',
    '--use',
    'abort=', // traps instead of abort(message): messages would need data segments
    '--importMemory',
    '--sharedMemory',
    '--initialMemory',
    '1',
    '--maximumMemory',
    String(MAX_PAGES),
    '--noExportMemory',
    '--use',
    `GEMM_TILE_ROWS=${variant.gemmTileRows}`,
    ...variant.features.flatMap((f) => ['--enable', f]),
  ];
  const { error, stderr } = await asc.main(args);
  if (error) throw new Error(`asc failed for ${variant.out}:\n${stderr.toString()}`);
  try {
    checkNoMemoryWrites(tmp);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, out);
}

if (sources.length === 0) throw new Error(`no AssemblyScript sources in ${sourceDir}`);
if (isUpToDate()) {
  console.log('build-wasm: up to date');
} else {
  mkdirSync(outDir, { recursive: true });
  for (const variant of variants) await compile(variant);
  writeFileSync(manifestPath, manifest);
  console.log(
    `build-wasm: compiled ${sources.length} file(s) into ${variants.map((v) => v.out).join(', ')}`,
  );
}
