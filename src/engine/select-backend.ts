/** Picks and activates the compute backend for a command (`--device`, `--threads`). */
import { LoraforgeError } from '../util/errors.ts';
import type { Backend } from './backend.ts';
import { CpuBackend } from './cpu/backend.ts';
import { setBackend } from './tensor.ts';

export type DeviceName = 'cpu' | 'webgpu' | 'auto';

export interface BackendOptions {
  device?: DeviceName;
  /** CPU worker threads including the main one (default: all cores). */
  threads?: number;
}

export async function selectBackend(opts: BackendOptions = {}): Promise<Backend> {
  const device = opts.device ?? 'auto';
  if (device === 'webgpu') {
    throw new LoraforgeError(
      'the WebGPU backend cannot run models yet (its kernels exist, the model path does not use them)',
      'use --device cpu',
    );
  }
  if (device !== 'cpu' && device !== 'auto') {
    throw new LoraforgeError(`unknown device "${device}"`, 'use --device cpu, webgpu or auto');
  }
  const backend = await CpuBackend.create({ threads: opts.threads });
  setBackend(backend);
  return backend;
}
