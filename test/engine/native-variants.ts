/**
 * The native addon's ISA variant builds under prebuilds/<platform>-<arch>/ (scripts/build-native.mjs),
 * loaded side by side for tests and benchmarks that compare them: each .node is its own module
 * with its own kernels and thread pool.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** What these tests use of the addon's surface (native/src/napi.cc). */
export interface NativeAddon {
  cpuFeatures(): Record<string, boolean>;
  info(): { variant: string; supported: boolean; threads: number; kernels: string[] };
  setThreads(threads: number): number;
  alloc(bytes: number): ArrayBuffer;
  address(buffer: ArrayBuffer): number;
  free(address: number): void;
  kernelId(name: string): number;
  call(id: number, args: Float64Array, start: number, end: number): number;
}

export interface NativeVariantBuild {
  name: string;
  addon: NativeAddon;
}

const ROOT = join(import.meta.dirname, '..', '..');
const PREBUILDS = join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
/** Variant names, baseline first (the order builds are listed in). */
const ORDER = ['x86-64', 'avx2', 'avx512', 'avx512bf16', 'neon'];

/**
 * Builds the variants when a compiler is there and they are stale (a no-op otherwise), unless
 * LORAFORGE_SKIP_NATIVE_BUILD=1: scripts/test-arm64.sh builds first, since under qemu-user this
 * Node cannot start a child Node.
 */
export function buildNativeIfPossible(): void {
  if (process.env.LORAFORGE_SKIP_NATIVE_BUILD === '1') return;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-native.mjs'), '--if-possible'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

/**
 * The builds for this platform this CPU runs (`info().supported`), baseline first, and the names
 * of those it does not run. None at all when prebuilds/ has no binary for this platform.
 */
export function loadNativeVariants(): { runnable: NativeVariantBuild[]; unsupported: string[] } {
  const files = existsSync(PREBUILDS)
    ? readdirSync(PREBUILDS).filter((f) => /^loraforge-.+\.node$/.test(f))
    : [];
  const rank = (name: string) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);
  const names = files
    .map((f) => f.slice('loraforge-'.length, -'.node'.length))
    .sort((x, y) => rank(x) - rank(y));
  const require = createRequire(import.meta.url);
  const runnable: NativeVariantBuild[] = [];
  const unsupported: string[] = [];
  for (const name of names) {
    const addon = require(join(PREBUILDS, `loraforge-${name}.node`)) as NativeAddon;
    if (addon.info().supported) runnable.push({ name, addon });
    else unsupported.push(name);
  }
  return { runnable, unsupported };
}

/** Why native tests skip, or undefined when there is at least one runnable build. */
export function nativeSkipReason(found: { runnable: NativeVariantBuild[] }): string | undefined {
  if (found.runnable.length > 0) return undefined;
  return `no native build this CPU runs in ${PREBUILDS} (npm run build:native needs a C++ compiler)`;
}
