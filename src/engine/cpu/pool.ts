/**
 * Worker-thread pool that runs wasm exports over [0, total) slices, synchronously: the main thread
 * publishes a task in a control block inside the shared memory, wakes the workers with
 * Atomics.notify, runs slice 0 itself, then Atomics.waits until every worker has acknowledged.
 */
import {
  MessageChannel,
  receiveMessageOnPort,
  Worker,
  type MessagePort,
} from 'node:worker_threads';

import { LAYOUT, sliceOf, type ExportedFunction, type ThreadPool } from './thread-pool.ts';

export class WorkerPool implements ThreadPool {
  private readonly control: Int32Array;
  private readonly args: Float64Array;
  private readonly functionIndex: Map<string, number>;
  private busy = false;

  private constructor(
    private readonly workers: Worker[],
    private readonly errorPorts: MessagePort[],
    memory: WebAssembly.Memory,
    controlOffset: number,
    module: WebAssembly.Module,
    private readonly mainExports: Record<string, ExportedFunction>,
  ) {
    this.control = new Int32Array(memory.buffer, controlOffset, LAYOUT.ARGS_OFFSET / 4);
    this.args = new Float64Array(
      memory.buffer,
      controlOffset + LAYOUT.ARGS_OFFSET,
      LAYOUT.MAX_ARGS,
    );
    const names = WebAssembly.Module.exports(module)
      .filter((entry) => entry.kind === 'function')
      .map((entry) => entry.name);
    this.functionIndex = new Map(names.map((name, index) => [name, index]));
  }

  /**
   * Starts `threads - 1` workers (the main thread is thread 0) and resolves once all of them have
   * instantiated the module. `controlOffset` must point at CONTROL_BLOCK_BYTES of zeroed memory.
   */
  static async start(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    controlOffset: number,
    threads: number,
    mainExports: Record<string, ExportedFunction>,
  ): Promise<WorkerPool> {
    const workers: Worker[] = [];
    const errorPorts: MessagePort[] = [];
    const ready: Promise<void>[] = [];
    for (let threadIndex = 1; threadIndex < threads; threadIndex++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
        workerData: {
          module,
          memory,
          controlOffset,
          threadIndex,
          threads,
          errorPort: port2,
          layout: LAYOUT,
        },
        transferList: [port2],
      });
      ready.push(
        new Promise((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
          worker.once('exit', (code) =>
            reject(new Error(`wasm worker ${threadIndex} exited with code ${code}`)),
          );
        }),
      );
      workers.push(worker);
      errorPorts.push(port1);
    }
    try {
      await Promise.all(ready);
    } catch (error) {
      await Promise.all(workers.map((worker) => worker.terminate()));
      throw error;
    }
    for (const worker of workers) {
      worker.removeAllListeners();
      worker.unref(); // an idle pool must not keep the process alive
    }
    for (const port of errorPorts) port.unref();
    return new WorkerPool(workers, errorPorts, memory, controlOffset, module, mainExports);
  }

  get threads(): number {
    return this.workers.length + 1;
  }

  /** Runs `name(...args, start, end)` on every thread's slice of [0, total); returns when all are done. */
  run(name: string, total: number, args: readonly number[]): void {
    const fn = this.mainExports[name];
    const index = this.functionIndex.get(name);
    if (fn === undefined || index === undefined)
      throw new Error(`parallelFor: no wasm export named '${name}'`);
    if (args.length > LAYOUT.MAX_ARGS)
      throw new Error(`parallelFor: at most ${LAYOUT.MAX_ARGS} arguments`);
    if (!Number.isInteger(total) || total < 0 || total > 0x7fffffff)
      throw new RangeError(`parallelFor: bad total ${total}`);
    if (this.busy)
      throw new Error('parallelFor: the pool is already running a task (re-entrant call)');
    const [start, end] = sliceOf(total, 0, this.threads);
    if (this.workers.length === 0) {
      if (start < end) fn(...args, start, end);
      return;
    }
    this.busy = true;
    try {
      this.publish(index, total, args);
      let mainError: unknown;
      try {
        if (start < end) fn(...args, start, end);
      } catch (error) {
        mainError = error; // still wait: workers may be writing memory the caller will reuse
      }
      this.waitForWorkers();
      const workerError = this.takeWorkerFailure(name); // taken even when rethrowing mainError
      if (mainError !== undefined) throw mainError;
      if (workerError) throw workerError;
    } finally {
      this.busy = false;
    }
  }

  /** Stops and terminates the workers; the pool is unusable afterwards. */
  dispose(): void {
    Atomics.store(this.control, LAYOUT.SHUTDOWN, 1);
    Atomics.add(this.control, LAYOUT.GENERATION, 1);
    Atomics.notify(this.control, LAYOUT.GENERATION);
    for (const worker of this.workers) void worker.terminate();
    for (const port of this.errorPorts) port.close();
    this.workers.length = 0;
  }

  private publish(index: number, total: number, args: readonly number[]): void {
    const control = this.control;
    control[LAYOUT.FUNCTION] = index;
    control[LAYOUT.ARG_COUNT] = args.length;
    control[LAYOUT.TOTAL] = total;
    control[LAYOUT.FAILED] = 0;
    this.args.set(args);
    Atomics.store(control, LAYOUT.PENDING, this.workers.length);
    Atomics.add(control, LAYOUT.GENERATION, 1); // sequentially consistent: publishes the writes above
    Atomics.notify(control, LAYOUT.GENERATION);
  }

  private waitForWorkers(): void {
    const control = this.control;
    for (let i = 0; i < LAYOUT.SPIN && Atomics.load(control, LAYOUT.PENDING) !== 0; i++);
    for (;;) {
      const pending = Atomics.load(control, LAYOUT.PENDING);
      if (pending === 0) return;
      Atomics.wait(control, LAYOUT.PENDING, pending);
    }
  }

  /** The error of a worker that failed in the last task (its messages drained), or undefined. */
  private takeWorkerFailure(name: string): Error | undefined {
    if (Atomics.load(this.control, LAYOUT.FAILED) === 0) return undefined;
    const messages = this.errorPorts.flatMap((port) => {
      const received = receiveMessageOnPort(port);
      return received ? [String(received.message)] : [];
    });
    return new Error(
      `parallelFor '${name}' failed in a worker: ${messages.join('; ') || 'unknown error'}`,
    );
  }
}
