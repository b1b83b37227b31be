/**
 * The CPU runtime's host in Node: kernels read from build/, one worker thread per extra core, V8
 * told to compile the kernels optimized up front. Importing this module registers that host, so
 * `WasmRuntime.create()` / `CpuBackend.create()` need no host argument in Node;
 * engine/select-backend.ts imports it (and so every command), tests and benchmarks do too.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { LoraforgeError } from '../../util/errors.ts';
import { WorkerPool } from './pool.ts';
import { registerRuntimeHost, type RuntimeHost } from './runtime.ts';

const buildDir = new URL('../../../build/', import.meta.url);

export const NODE_RUNTIME_HOST: RuntimeHost = {
  async readKernels(name) {
    const url = new URL(name, buildDir);
    try {
      return new Uint8Array(await readFile(url));
    } catch {
      throw new LoraforgeError(`missing CPU kernels ${url.pathname}`, 'run `npm run build:wasm`');
    }
  },
  defaultThreads: () => availableParallelism(),
  beforeCompile(relaxed) {
    // V8 first runs wasm from its baseline compiler (Liftoff, ~4x slower here) and swaps in
    // optimized code only for later calls; a long kernel call (an LM-head GEMM takes seconds)
    // would run entirely on the baseline code. Compile everything optimized up front instead.
    setFlagsFromString('--no-liftoff');
    // Node 20's V8 ships relaxed SIMD behind a flag; setting it before compiling is enough.
    if (relaxed) setFlagsFromString('--experimental-wasm-relaxed-simd');
  },
  startPool: (module, memory, controlOffset, threads, exports) =>
    WorkerPool.start(module, memory, controlOffset, threads, exports),
};

registerRuntimeHost(NODE_RUNTIME_HOST);
