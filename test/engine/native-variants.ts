/**
 * The native addon's ISA variant builds under prebuilds/<platform>-<arch>/ (scripts/build-native.mjs),
 * loaded side by side for tests and benchmarks that compare them: each .node is its own module
 * with its own kernels and thread pool.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  loadNativeVariant,
  nativeVariants,
  type NativeAddon,
} from '../../src/engine/native/addon.ts';

export type { NativeAddon };

export interface NativeVariantBuild {
  name: string;
  addon: NativeAddon;
}

const ROOT = join(import.meta.dirname, '..', '..');

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
 * The builds for this platform this CPU runs, baseline first (the loader's list), and the names
 * of those it does not run. None at all when prebuilds/ has no binary for this platform.
 */
export function loadNativeVariants(): { runnable: NativeVariantBuild[]; unsupported: string[] } {
  let variants: ReturnType<typeof nativeVariants>;
  try {
    variants = nativeVariants();
  } catch {
    return { runnable: [], unsupported: [] };
  }
  const runnable = variants
    .filter((v) => v.supported)
    .map((v) => ({ name: v.name, addon: loadNativeVariant(v.name) }));
  const unsupported = variants.filter((v) => !v.supported).map((v) => v.name);
  return { runnable, unsupported };
}

/** Why native tests skip, or undefined when there is at least one runnable build. */
export function nativeSkipReason(found: { runnable: NativeVariantBuild[] }): string | undefined {
  if (found.runnable.length > 0) return undefined;
  return `no native build this CPU runs under prebuilds/ (npm run build:native needs a C++ compiler)`;
}
