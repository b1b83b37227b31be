/**
 * The page's compute backend: WebGPU when the browser gives an adapter (a core one, else a
 * compatibility-mode one), otherwise the wasm CPU kernels on one thread, slower but the same code.
 * The adapter line tells people which one runs; its data attributes tell the test.
 */
import { browserRuntimeHost } from '../engine/cpu/browser-host.ts';
import { CpuBackend } from '../engine/cpu/backend.ts';
import { setBackend } from '../engine/tensor.ts';
import { WebGpuBackend } from '../engine/webgpu/backend.ts';
import { WebGpuKernels } from '../engine/webgpu/kernels.ts';
import type { FeatureLevel } from './page-options.ts';

export type PageBackendName = 'WebGPU' | 'the CPU (WebAssembly, 1 thread)';

/** Activates the backend (kernels fetched from `buildDir` for the CPU) and describes it in `line`. */
export async function startPageBackend(
  first: FeatureLevel,
  buildDir: string,
  line: HTMLElement,
): Promise<PageBackendName> {
  let kernels: WebGpuKernels;
  let featureLevel: FeatureLevel;
  try {
    ({ kernels, featureLevel } = await createKernels(first));
  } catch (err) {
    // No adapter (or no WebGPU at all): the same code runs, slower, on the CPU kernels.
    setBackend(await CpuBackend.create({ threads: 1, host: browserRuntimeHost(buildDir) }));
    line.dataset.backend = 'cpu';
    line.textContent =
      `no WebGPU adapter (${(err as Error).message}): running on the CPU backend ` +
      '(WebAssembly SIMD, one thread; slower)';
    return 'the CPU (WebAssembly, 1 thread)';
  }
  setBackend(new WebGpuBackend(kernels));
  const { adapterInfo, shaderF16, subgroups } = kernels.context;
  // The test reads the JSON; people read the line.
  line.dataset.backend = 'webgpu';
  line.dataset.info = JSON.stringify({ ...adapterInfo, featureLevel, shaderF16, subgroups });
  const name =
    adapterInfo.description ||
    [adapterInfo.vendor, adapterInfo.architecture].filter(Boolean).join(' ');
  line.textContent = `WebGPU adapter: ${name || 'unnamed'} (${featureLevel})`;
  return 'WebGPU';
}

/** A core adapter, else a compatibility-mode one (only the latter when asked for it first). */
async function createKernels(
  first: FeatureLevel,
): Promise<{ kernels: WebGpuKernels; featureLevel: FeatureLevel }> {
  const order: FeatureLevel[] = first === 'core' ? ['core', 'compatibility'] : ['compatibility'];
  let error: unknown;
  for (const featureLevel of order) {
    try {
      return { kernels: await WebGpuKernels.create({ featureLevel }), featureLevel };
    } catch (err) {
      error ??= err;
    }
  }
  throw error;
}
