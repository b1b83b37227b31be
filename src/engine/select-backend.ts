/** Picks and activates the compute backend for a command (`--device`, `--threads`). */
import './cpu/node-host.ts';
import { readdirSync } from 'node:fs';
import { LoraforgeError } from '../util/errors.ts';
import type { Backend } from './backend.ts';
import { CpuBackend } from './cpu/backend.ts';
import { DEVICE_NAMES, type DeviceName } from './devices.ts';
import { loadNativeAddon } from './native/addon.ts';
import { NativeBackend } from './native/backend.ts';
import type { GemmPrecision } from './native/runtime.ts';
import { setBackend } from './tensor.ts';
import { WebGpuBackend } from './webgpu/backend.ts';
import { hasHardwareGpu } from './webgpu/device.ts';
import { fileTuneStore } from './webgpu/tune-store-file.ts';

export { DEVICE_NAMES, type DeviceName };

/** Which compute device to use, and how many CPU threads. */
export interface BackendOptions {
  /**
   * `auto` (default): WebGPU when it finds a hardware GPU adapter, else the CPU (native when this
   * platform has the addon's binary, else WebAssembly). Software adapters (lavapipe,
   * SwiftShader) are only used when asked for with `webgpu`: they run the kernels on the CPU,
   * far slower than the CPU backends.
   */
  device?: DeviceName;
  /** CPU worker threads including the main one (default: all cores). */
  threads?: number;
  /**
   * `bf16`: products of bf16 operands (the frozen weights) in bf16 with float32 sums where the
   * backend has bf16 dot products (native, AVX-512 BF16), as HF's bf16 autocast multiplies;
   * exact float32 products elsewhere. Default `exact`.
   */
  gemmPrecision?: GemmPrecision;
}

let active: { key: string; backend: Backend } | undefined;

/**
 * False on a Linux machine without any GPU device node (DRM render nodes, NVIDIA's devices):
 * there Dawn could only find a software adapter, so `auto` skips loading it (and its warnings).
 */
function mayHaveGpu(): boolean {
  if (process.platform !== 'linux') return true;
  const has = (dir: string, prefix: string) => {
    try {
      return readdirSync(dir).some((name) => name.startsWith(prefix));
    } catch {
      return false;
    }
  };
  return has('/dev/dri', 'renderD') || has('/dev', 'nvidia');
}

/**
 * Activates the backend for these options. Asking again with the same options returns the same
 * backend: tensors of one backend cannot mix with another's (e.g. the demo's chat model and the
 * model its training step loads must share one memory).
 */
export async function selectBackend(opts: BackendOptions = {}): Promise<Backend> {
  const device = opts.device ?? 'auto';
  const key = `${device}:${opts.threads ?? 'all'}:${opts.gemmPrecision ?? 'exact'}`;
  if (active?.key === key) return active.backend;
  if (!(DEVICE_NAMES as readonly string[]).includes(device)) {
    throw new LoraforgeError(
      `unknown device "${device}"`,
      `use --device ${DEVICE_NAMES.join(', ')}`,
    );
  }
  const gpu =
    device === 'webgpu' || (device === 'auto' && mayHaveGpu() && (await hasHardwareGpu()));
  const backend = gpu
    ? await WebGpuBackend.create({ store: fileTuneStore() })
    : device === 'wasm'
      ? await CpuBackend.create({ threads: opts.threads })
      : await fastestCpuBackend(opts);
  setBackend(backend);
  active = { key, backend };
  return backend;
}

let fallbackNoticed = false;

/**
 * The native backend when this platform has its binary, else the wasm one with one stderr line
 * (once per process) saying why and how to build the native one.
 */
async function fastestCpuBackend({ threads, gemmPrecision }: BackendOptions): Promise<Backend> {
  const load = loadNativeAddon();
  if (load.addon) return NativeBackend.create({ threads, variant: load.variant, gemmPrecision });
  if (!fallbackNoticed) {
    fallbackNoticed = true;
    process.stderr.write(
      `loraforge: CPU backend is WebAssembly, the native one is unavailable (${load.reason}); \`npm run build:native\` (needs a C++ compiler) builds it\n`,
    );
  }
  return CpuBackend.create({ threads });
}
