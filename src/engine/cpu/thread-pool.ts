/**
 * What the runtime needs of a thread pool, the control-block layout that Node's worker pool
 * (pool.ts, worker.mjs) shares with its workers, and the one-thread pool a page uses.
 */
/** Control block layout, shared with worker.mjs: Int32 slots, then Float64 arguments. */
export const LAYOUT = {
  GENERATION: 0, // bumped once per task; workers wait on it
  PENDING: 1, // workers that have not finished the current task; the main thread waits on it
  FUNCTION: 2, // index into the module's function exports
  ARG_COUNT: 3,
  TOTAL: 4,
  FAILED: 5,
  SHUTDOWN: 6,
  ARGS_OFFSET: 64, // bytes
  MAX_ARGS: 32,
  SPIN: 2000, // polls before sleeping: a few microseconds; longer spins hurt when the cores are oversubscribed
} as const;

export const CONTROL_BLOCK_BYTES = LAYOUT.ARGS_OFFSET + LAYOUT.MAX_ARGS * 8;

export type ExportedFunction = (...args: number[]) => unknown;

/** Slice `thread` of `threads` over [0, total); worker.mjs computes the same split. */
export function sliceOf(total: number, thread: number, threads: number): [number, number] {
  return [Math.floor((total * thread) / threads), Math.floor((total * (thread + 1)) / threads)];
}

/** Runs wasm exports over slices of [0, total) on every thread of the pool. */
export interface ThreadPool {
  readonly threads: number;
  /** Runs `name(...args, start, end)` on every thread's slice of [0, total); returns when all are done. */
  run(name: string, total: number, args: readonly number[]): void;
  dispose(): void;
}

/** The calling thread alone (a page: no worker can block on shared memory in the main thread). */
export class SingleThreadPool implements ThreadPool {
  readonly threads = 1;
  constructor(private readonly exports: Record<string, ExportedFunction>) {}

  run(name: string, total: number, args: readonly number[]): void {
    const fn = this.exports[name];
    if (!fn) throw new Error(`parallelFor: no wasm export named '${name}'`);
    if (total > 0) fn(...args, 0, total);
  }

  dispose(): void {}
}
