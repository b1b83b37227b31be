/**
 * Continuous batching over a `ServeEngine`: requests wait in one FIFO queue, up to `maxBatch` of
 * them are decoded together (one `engine.step()` per iteration advances all of them by a token),
 * and a finished or cancelled request frees its slot for the next one between steps.
 */
import { ApiError, unavailable } from './api-error.ts';
import type { SequenceHandle, SequenceRequest, ServeEngine } from './engine.ts';

export interface GenerationJob {
  sequence: SequenceRequest;
  /** Called with every generated token except EOS; returning false ends the job with 'stop'. */
  onToken(tokenId: number): boolean;
}

export type FinishReason = 'stop' | 'length';

export interface JobOutcome {
  finishReason: FinishReason;
  /** Tokens the model generated, EOS included. */
  completionTokens: number;
}

export interface SchedulerOptions {
  maxBatch: number;
  /** Requests allowed to wait beyond the `maxBatch` running ones; more are refused with 429. */
  maxQueue: number;
}

interface Entry {
  readonly job: GenerationJob;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (outcome: JobOutcome) => void;
  readonly reject: (err: unknown) => void;
  readonly onAbort: () => void;
  seq: SequenceHandle | null;
  generated: number;
  /** Set when cancelled while inside a pending step; acted on once the step settles. */
  cancelReason: unknown;
  done: boolean;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Scheduler {
  private readonly queue: Entry[] = [];
  private readonly active: Entry[] = [];
  private readonly stepping = new Set<Entry>();
  private readonly eos: Set<number>;
  private loopScheduled = false;
  private accepting = true;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly engine: ServeEngine,
    private readonly options: SchedulerOptions,
  ) {
    this.eos = new Set(engine.eosTokenIds);
  }

  get activeCount(): number {
    return this.active.length;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /** True while a queued or running request uses the adapter (it must not be unloaded then). */
  usesAdapter(name: string): boolean {
    return [...this.queue, ...this.active].some((e) => e.job.sequence.adapter === name);
  }

  /**
   * Queues a job. Aborting `signal` (the client went away) removes it from the queue or releases
   * its sequence right away (after the pending step, if it is in one) and rejects with the
   * signal's reason.
   */
  submit(job: GenerationJob, signal?: AbortSignal): Promise<JobOutcome> {
    if (!this.accepting) return Promise.reject(unavailable('The server is shutting down.'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.queue.length + this.active.length >= this.options.maxBatch + this.options.maxQueue) {
      return Promise.reject(
        new ApiError(429, 'The server is busy; retry shortly.', 'rate_limit_error', 'queue_full'),
      );
    }
    return new Promise<JobOutcome>((resolve, reject) => {
      const entry: Entry = {
        job,
        signal,
        resolve,
        reject,
        onAbort: () => this.cancel(entry, signal!.reason),
        seq: null,
        generated: 0,
        cancelReason: undefined,
        done: false,
      };
      signal?.addEventListener('abort', entry.onAbort, { once: true });
      this.queue.push(entry);
      this.scheduleLoop();
    });
  }

  /** Refuses new jobs with 503 from now on; running and queued ones continue. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /** Resolves once nothing is queued or running. */
  whenIdle(): Promise<void> {
    if (this.queue.length === 0 && this.active.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Fails every queued and running job with `reason` (used when the shutdown grace runs out). */
  cancelAll(reason: unknown): void {
    for (const entry of [...this.queue, ...this.active]) this.cancel(entry, reason);
  }

  private cancel(entry: Entry, reason: unknown): void {
    if (entry.done) return;
    if (this.stepping.has(entry)) entry.cancelReason ??= reason;
    else this.settle(entry, reason, null);
  }

  /** Starts the decode loop on a later turn so requests arriving together join the same batch. */
  private scheduleLoop(): void {
    if (this.loopScheduled) return;
    this.loopScheduled = true;
    setImmediate(() => {
      this.runLoop()
        .catch((err) => {
          // Only a bug gets here; fail the requests instead of leaving them hanging.
          console.error('loraforge serve: decode loop failed:', err);
          this.cancelAll(err);
        })
        .finally(() => {
          this.loopScheduled = false;
          // A job may have been queued after the loop saw an empty queue but before it ended.
          if (this.queue.length > 0) this.scheduleLoop();
          else this.notifyIdle();
        });
    });
  }

  private async runLoop(): Promise<void> {
    while (this.queue.length > 0 || this.active.length > 0) {
      this.admit();
      if (this.active.length > 0) await this.stepOnce();
      // Without this the loop would starve socket I/O whenever step() settles synchronously.
      await yieldToEventLoop();
    }
  }

  private admit(): void {
    while (this.active.length < this.options.maxBatch && this.queue.length > 0) {
      const entry = this.queue[0]!;
      if (this.engine.hasCapacityFor && !this.engine.hasCapacityFor(entry.job.sequence)) {
        if (this.active.length > 0) return; // running sequences will free memory
        this.settle(entry, doesNotFit(), null);
        continue;
      }
      this.queue.shift();
      try {
        entry.seq = this.engine.createSequence(entry.job.sequence);
        this.active.push(entry);
      } catch (err) {
        this.settle(entry, err, null);
      }
    }
  }

  private async stepOnce(): Promise<void> {
    const batch = [...this.active];
    for (const entry of batch) this.stepping.add(entry);
    let tokens: (number | null)[] | undefined;
    let failure: unknown;
    try {
      tokens = await this.engine.step(batch.map((e) => e.seq!));
      if (tokens.length !== batch.length) {
        failure = new Error(
          `engine.step returned ${tokens.length} tokens for ${batch.length} sequences`,
        );
      }
    } catch (err) {
      failure = err;
    } finally {
      this.stepping.clear();
    }
    batch.forEach((entry, i) => {
      if (entry.done) return;
      if (entry.cancelReason !== undefined) this.settle(entry, entry.cancelReason, null);
      else if (failure !== undefined) this.settle(entry, failure, null);
      else if (tokens![i] !== null) this.deliver(entry, tokens![i]!); // null: still prefilling
    });
  }

  private deliver(entry: Entry, tokenId: number): void {
    entry.generated++;
    if (this.eos.has(tokenId)) return this.finish(entry, 'stop');
    let wantsMore: boolean;
    try {
      wantsMore = entry.job.onToken(tokenId);
    } catch (err) {
      return this.settle(entry, err, null);
    }
    if (entry.done) return; // onToken's side effects cancelled the job
    if (!wantsMore) return this.finish(entry, 'stop');
    const { promptIds, maxNewTokens } = entry.job.sequence;
    const contextUsed = promptIds.length + entry.generated;
    if (entry.generated >= maxNewTokens || contextUsed >= this.engine.maxContext) {
      this.finish(entry, 'length');
    }
  }

  private finish(entry: Entry, finishReason: FinishReason): void {
    this.settle(entry, undefined, { finishReason, completionTokens: entry.generated });
  }

  /** The one exit of every job: frees its sequence and drops every reference to it. */
  private settle(entry: Entry, error: unknown, outcome: JobOutcome | null): void {
    entry.done = true;
    entry.signal?.removeEventListener('abort', entry.onAbort);
    removeFrom(this.queue, entry);
    removeFrom(this.active, entry);
    const seq = entry.seq;
    entry.seq = null;
    try {
      if (seq) this.engine.release(seq);
    } catch (err) {
      console.error(`loraforge serve: engine.release(${seq!.id}) failed:`, err);
    }
    if (outcome) entry.resolve(outcome);
    else entry.reject(error);
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}

const doesNotFit = () =>
  new ApiError(
    503,
    "The request does not fit in the model's memory.",
    'server_error',
    'insufficient_memory',
  );

function removeFrom<T>(list: T[], item: T): void {
  const at = list.indexOf(item);
  if (at >= 0) list.splice(at, 1);
}
