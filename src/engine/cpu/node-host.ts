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
import { isRevectorizing, prepareWasmCompiler, supportsRelaxedSimd } from './v8-flags.ts';
import { checkWideKernels } from './wide-kernels.ts';

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
  wideKernels: (relaxed) => (wideKernels ??= chooseWideKernels(relaxed)),
  startPool: (module, memory, controlOffset, threads, exports) =>
    WorkerPool.start(module, memory, controlOffset, threads, exports),
};

/** The process's choice, made once (every runtime gets the same build). */
let wideKernels: Promise<WebAssembly.Module | undefined> | undefined;

/** The wide build when V8 revectorizes it and checkWideKernels finds it exact and faster. */
async function chooseWideKernels(
  relaxed: WebAssembly.Module,
): Promise<WebAssembly.Module | undefined> {
  if (!isRevectorizing()) return undefined;
  const wide = await WebAssembly.compile(
    await NODE_RUNTIME_HOST.readKernels('loraforge-wide.wasm'),
  );
  return checkWideKernels(relaxed, wide).chosen ? wide : undefined;
}

registerRuntimeHost(NODE_RUNTIME_HOST);
