/**
 * The CPU backends the backend-parameterized suites run on: WebAssembly, and native in every ISA
 * variant this CPU runs (each its own module and pool in this process; LORAFORGE_NATIVE_ISA
 * narrows it to one). Without a native binary the native suites are skipped with the reason, except
 * under CI (which builds it in `npm test`'s pretest), where they fail.
 */
import { before, describe } from 'node:test';
import type { Backend } from '../src/engine/backend.ts';
import { loadNativeAddon, nativeVariants } from '../src/engine/native/addon.ts';
import { NativeBackend } from '../src/engine/native/backend.ts';
import { setBackend } from '../src/engine/tensor.ts';
import { useCpuBackend } from './helpers.ts';

/** Why native suites cannot run here (false when they can, or must: under CI). */
function nativeSkip(): string | false {
  if (process.env.CI) return false;
  const load = loadNativeAddon();
  return load.addon ? false : `no native CPU backend: ${load.reason}`;
}

/** The native variants this CPU runs (all of them, or LORAFORGE_NATIVE_ISA's), best last. */
export function nativeTestVariants(): { variants: string[]; skip: string | false } {
  const skip = nativeSkip();
  if (skip) return { variants: [], skip };
  const forced = process.env.LORAFORGE_NATIVE_ISA;
  if (forced) return { variants: [forced], skip };
  return {
    variants: nativeVariants()
      .filter((v) => v.supported)
      .map((v) => v.name),
    skip,
  };
}

const natives = new Map<string, NativeBackend>();

/** One native backend per variant for the process (2 threads), the best when none is named. */
export function useNativeBackend(variant?: string): NativeBackend {
  const name = variant ?? nativeTestVariants().variants.at(-1);
  if (!name) throw new Error(nativeSkip() || 'no native variant runs on this CPU');
  let backend = natives.get(name);
  if (!backend) natives.set(name, (backend = NativeBackend.create({ threads: 2, variant: name })));
  return backend;
}

export interface CpuTestBackend {
  label: string;
  skip: string | false;
  /** Activates the backend (setBackend) and returns it. */
  use(): Promise<Backend>;
}

/**
 * WebAssembly, then native in every ISA variant this CPU runs (best last), so that each golden
 * test and gradient check holds on every code path a user's CPU may select.
 */
export function cpuTestBackends(): CpuTestBackend[] {
  const wasm: CpuTestBackend = {
    label: 'wasm',
    skip: false,
    use: async () => {
      const backend = await useCpuBackend();
      setBackend(backend);
      return backend;
    },
  };
  const native = nativeTestVariants();
  if (native.skip)
    return [wasm, { label: 'native', skip: native.skip, use: () => useCpu(useNativeBackend()) }];
  return [
    wasm,
    ...native.variants.map((variant) => ({
      label: `native ${variant}`,
      skip: false as const,
      use: () => useCpu(useNativeBackend(variant)),
    })),
  ];
}

function useCpu(backend: Backend): Promise<Backend> {
  setBackend(backend);
  return Promise.resolve(backend);
}

/**
 * Registers `suite` once per CPU backend, in a describe block named after it whose tests run with
 * that backend active (set before the block's own `before` hooks, so they load on it).
 */
export function forEachCpuBackend(suite: (backend: CpuTestBackend) => void): void {
  for (const backend of cpuTestBackends()) {
    describe(backend.label, { skip: backend.skip }, () => {
      before(() => backend.use());
      suite(backend);
    });
  }
}
