/** Picks and activates the compute backend for a command (`--device`, `--threads`). */
import './cpu/node-host.ts';
import { readdirSync } from 'node:fs';
import { LoraforgeError } from '../util/errors.ts';
import type { Backend } from './backend.ts';
import { CpuBackend } from './cpu/backend.ts';
import { setBackend } from './tensor.ts';
import { WebGpuBackend } from './webgpu/backend.ts';
import { hasHardwareGpu } from './webgpu/device.ts';
import { fileTuneStore } from './webgpu/tune-store-file.ts';

/** A compute device: `cpu` (WebAssembly SIMD), `webgpu`, or `auto` (a hardware GPU if there is one, else the CPU). */
export type DeviceName = 'cpu' | 'webgpu' | 'auto';

/** Which compute device to use, and how many CPU threads. */
export interface BackendOptions {
  /**
   * `auto` (default): WebGPU when it finds a hardware GPU adapter, else the CPU. Software
   * adapters (lavapipe, SwiftShader) are only used when asked for with `webgpu`: they run the
   * kernels on the CPU, far slower than the wasm backend.
   */
  device?: DeviceName;
  /** CPU worker threads including the main one (default: all cores). */
  threads?: number;
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
  const key = `${device}:${opts.threads ?? 'all'}`;
  if (active?.key === key) return active.backend;
  if (device !== 'cpu' && device !== 'webgpu' && device !== 'auto') {
    throw new LoraforgeError(`unknown device "${device}"`, 'use --device cpu, webgpu or auto');
  }
  const gpu =
    device === 'webgpu' || (device === 'auto' && mayHaveGpu() && (await hasHardwareGpu()));
  const backend = gpu
    ? await WebGpuBackend.create({ store: fileTuneStore() })
    : await CpuBackend.create({ threads: opts.threads });
  setBackend(backend);
  active = { key, backend };
  return backend;
}
