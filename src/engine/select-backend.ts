/** Picks and activates the compute backend for a command (`--device`, `--threads`). */
import { LoraforgeError } from '../util/errors.ts';
import type { Backend } from './backend.ts';
import { CpuBackend } from './cpu/backend.ts';
import { setBackend } from './tensor.ts';
import { WebGpuBackend } from './webgpu/backend.ts';

export type DeviceName = 'cpu' | 'webgpu' | 'auto';

export interface BackendOptions {
  /**
   * `auto` (default) is the CPU for now: training and decoding run on WebGPU (`webgpu`), but
   * only on lavapipe so far; auto should pick a hardware adapter once a real GPU has run the
   * golden tests and a benchmark.
   */
  device?: DeviceName;
  /** CPU worker threads including the main one (default: all cores). */
  threads?: number;
}

let active: { key: string; backend: Backend } | undefined;

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
  const gpu = device === 'webgpu';
  const backend = gpu
    ? await WebGpuBackend.create()
    : await CpuBackend.create({ threads: opts.threads });
  setBackend(backend);
  active = { key, backend };
  return backend;
}
