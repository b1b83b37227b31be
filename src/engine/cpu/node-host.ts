/**
 * The CPU runtime's host in Node: kernels read from build/, one worker thread per extra core, V8
 * flags set per version (v8-flags.ts). Importing this module registers that host, so
 * `WasmRuntime.create()` / `CpuBackend.create()` need no host argument in Node;
 * engine/select-backend.ts imports it (and so every command), tests and benchmarks do too.
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { LoraforgeError } from '../../util/errors.ts';
import { WorkerPool } from './pool.ts';
import { registerRuntimeHost, type RuntimeHost } from './runtime.ts';
import { prepareWasmCompiler, supportsRelaxedSimd } from './v8-flags.ts';

/**
 * The prebuilt kernels: <repository or package root>/build/. src/ (run by tsx in a checkout) and
 * dist/ (the compiled package) sit at the same depth, so one relative URL serves both.
 */
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
  prepareCompiler: prepareWasmCompiler,
  supportsRelaxedSimd,
  startPool: (module, memory, controlOffset, threads, exports) =>
    WorkerPool.start(module, memory, controlOffset, threads, exports),
};

registerRuntimeHost(NODE_RUNTIME_HOST);
