/**
 * Loads the native CPU addon: one Node-API module per ISA variant under
 * prebuilds/<platform>-<arch>/loraforge-<variant>.node (scripts/build-native.mjs), listed best last
 * in variants.json beside them. The baseline build tells the CPU's features; the best variant the
 * CPU runs is loaded, or the one LORAFORGE_NATIVE_ISA names. Node only: the browser bundle never
 * reaches this module (only engine/select-backend.ts and Node tests import the native backend).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoraforgeError } from '../../util/errors.ts';

/** The addon's JavaScript surface (native/src/napi.cc). */
export interface NativeAddon {
  /** The CPU's features by the names variants.json uses (avx2, avx512f, avx512bf16, neon). */
  cpuFeatures(): Record<string, boolean>;
  info(): { variant: string; supported: boolean; threads: number; kernels: string[] };
  /** A pool of n threads, the calling one included (1: no pool); returns the size. */
  setThreads(threads: number): number;
  /** 64-byte-aligned native memory, valid until free(address(buffer)). */
  alloc(bytes: number): ArrayBuffer;
  address(buffer: ArrayBuffer): number;
  free(address: number): void;
  /** A kernel's id, or -1 when this build lacks it. */
  kernelId(name: string): number;
  /** The arguments a kernel takes before its work range. */
  kernelArity(id: number): number;
  call(id: number, args: Float64Array, start: number, end: number): number;
  parallelFor(id: number, total: number, args: Float64Array): void;
}

/** One variant built for this platform: its name and the CPU features it needs. */
export interface NativeVariant {
  name: string;
  cpu: string[];
  /** Its binary. */
  path: string;
  /** Whether this CPU has every feature it needs. */
  supported: boolean;
}

/** The environment variable that forces a variant. */
export const NATIVE_ISA_ENV = 'LORAFORGE_NATIVE_ISA';

/** The package's prebuilds for this platform: the same path from src/ (tsx) and dist/. */
const PREBUILDS = fileURLToPath(
  new URL(`../../../prebuilds/${process.platform}-${process.arch}/`, import.meta.url),
);
const requireAddon = createRequire(import.meta.url);

/** The variants built here, best last, each marked with whether this CPU runs it. */
export function nativeVariants(): NativeVariant[] {
  const manifest = join(PREBUILDS, 'variants.json');
  if (!existsSync(manifest)) {
    throw new Error(
      `no native build for ${process.platform}-${process.arch}: ${manifest} not found`,
    );
  }
  const listed = JSON.parse(readFileSync(manifest, 'utf8')) as { name: string; cpu: string[] }[];
  const built = listed
    .map((v) => ({ ...v, path: join(PREBUILDS, `loraforge-${v.name}.node`) }))
    .filter((v) => existsSync(v.path));
  if (built.length === 0) throw new Error(`no native binary in ${PREBUILDS}`);
  const features = loadAddonFile(built[0]!.path).cpuFeatures();
  return built.map((v) => ({ ...v, supported: v.cpu.every((feature) => features[feature]) }));
}

/**
 * The addon of one variant. Each variant is its own module (its own kernels and thread pool), so
 * several can be loaded side by side; loading one twice gives the same module.
 */
export function loadNativeVariant(name: string): NativeAddon {
  const variants = nativeVariants();
  const variant = variants.find((v) => v.name === name);
  const choices = variants
    .filter((v) => v.supported)
    .map((v) => v.name)
    .join(', ');
  if (!variant || !variant.supported) {
    const why = variant ? 'this CPU lacks its features' : 'unknown variant';
    throw new LoraforgeError(
      `native ISA variant "${name}": ${why}; this machine runs: ${choices || 'none'}`,
    );
  }
  return loadAddonFile(variant.path);
}

/** What `loadNativeAddon` found: the addon, or why there is none. */
export type NativeLoad = { addon: NativeAddon; variant: string } | { addon: null; reason: string };

/**
 * The best native variant this CPU runs (or LORAFORGE_NATIVE_ISA's, which throws a
 * LoraforgeError when unknown or unsupported). No binary, or one that fails to load, is not an
 * error: the reason comes back for the fallback notice.
 */
export function loadNativeAddon(): NativeLoad {
  const forced = process.env[NATIVE_ISA_ENV];
  if (forced) {
    const addon = loadNativeVariant(forced);
    return { addon, variant: addon.info().variant };
  }
  try {
    const best = nativeVariants()
      .filter((v) => v.supported)
      .at(-1);
    if (!best) return { addon: null, reason: 'this CPU runs none of the native variants built' };
    const addon = loadAddonFile(best.path);
    return { addon, variant: addon.info().variant };
  } catch (err) {
    return { addon: null, reason: err instanceof Error ? err.message : String(err) };
  }
}

function loadAddonFile(path: string): NativeAddon {
  return requireAddon(path) as NativeAddon;
}
