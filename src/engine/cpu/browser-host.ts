/**
 * The CPU runtime's host in a browser page: kernels fetched from the page's server, one thread.
 * (Blocking on shared memory, which the worker pool's main thread does, is not allowed on a
 * page's main thread.) The shared WebAssembly.Memory needs a cross-origin isolated page
 * (COOP same-origin + COEP require-corp headers), as scripts/serve-web.ts serves it.
 */
import { LoraforgeError } from '../../util/errors.ts';
import { SingleThreadPool } from './thread-pool.ts';
import type { RuntimeHost } from './runtime.ts';

/** A host that fetches `loraforge*.wasm` from `buildUrl` (the repository's build/ folder). */
export function browserRuntimeHost(buildUrl: string | URL): RuntimeHost {
  return {
    async readKernels(name) {
      const url = new URL(name, buildUrl);
      const response = await fetch(url);
      if (!response.ok) {
        throw new LoraforgeError(`${url}: HTTP ${response.status}`, 'serve build/ beside the page');
      }
      return new Uint8Array(await response.arrayBuffer());
    },
    defaultThreads: () => 1,
    async startPool(_module, _memory, _controlOffset, threads, exports) {
      if (threads !== 1)
        throw new LoraforgeError(`a page runs the CPU backend on 1 thread, not ${threads}`);
      return new SingleThreadPool(exports);
    },
  };
}
