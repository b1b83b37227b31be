// Pool worker: instantiates the kernel module over the shared memory, then loops forever running
// its slice of each task the main thread publishes in the control block (see pool.ts for the layout).
// Plain JS so that it starts without a TypeScript loader.
import { parentPort, workerData } from 'node:worker_threads';

const { module, memory, controlOffset, threadIndex, threads, errorPort, layout } = workerData;
const { GENERATION, PENDING, FUNCTION, ARG_COUNT, TOTAL, FAILED, SHUTDOWN, ARGS_OFFSET, SPIN } =
  layout;

const instance = new WebAssembly.Instance(module, { env: { memory } });
const functions = WebAssembly.Module.exports(module)
  .filter((entry) => entry.kind === 'function')
  .map((entry) => instance.exports[entry.name]);
const control = new Int32Array(memory.buffer, controlOffset, ARGS_OFFSET / 4);
const args = new Float64Array(memory.buffer, controlOffset + ARGS_OFFSET, layout.MAX_ARGS);

/** Spins briefly before sleeping: back-to-back kernel calls then skip the futex wake-up latency. */
function waitForGeneration(seen) {
  for (let i = 0; i < SPIN; i++) if (Atomics.load(control, GENERATION) !== seen) return;
  Atomics.wait(control, GENERATION, seen);
}

let seen = Atomics.load(control, GENERATION);
parentPort.postMessage('ready');
for (;;) {
  waitForGeneration(seen);
  const generation = Atomics.load(control, GENERATION);
  if (generation === seen) continue;
  seen = generation;
  if (Atomics.load(control, SHUTDOWN)) break;
  // Every worker acknowledges every task (even with an empty slice), so the main thread never
  // rewrites the control block while a worker might still be reading it.
  const total = control[TOTAL];
  const start = Math.floor((total * threadIndex) / threads);
  const end = Math.floor((total * (threadIndex + 1)) / threads);
  if (start < end) {
    try {
      const callArgs = Array.from(args.subarray(0, control[ARG_COUNT]));
      functions[control[FUNCTION]](...callArgs, start, end);
    } catch (error) {
      errorPort.postMessage(`worker ${threadIndex}: ${error?.stack ?? error}`);
      Atomics.store(control, FAILED, 1);
    }
  }
  if (Atomics.sub(control, PENDING, 1) === 1) Atomics.notify(control, PENDING);
}
