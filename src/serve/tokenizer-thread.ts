/**
 * Tokenizes long prompts on a worker thread. Tokenizing is synchronous and, for a prompt of a
 * few hundred kilobytes, takes long enough (0.1-1 s) to stall every stream the server decodes
 * and its /health; short prompts stay on the main thread, where a round trip would cost more.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ChatMessage } from '../data/templates.ts';
import { LoraforgeError } from '../util/errors.ts';

/** A raw prompt, or chat messages with the spec of the template that renders them. */
export type TokenizeJob =
  { kind: 'text'; text: string } | { kind: 'chat'; messages: ChatMessage[]; spec: unknown };

export type TokenizeRequest = TokenizeJob & { id: number };

export type TokenizeReply =
  | { id: number; ids: number[] }
  | { id: number; error: { message: string; hint?: string; user: boolean } };

/**
 * The worker's entry: in the package, the compiled service beside this module (dist/); in a
 * checkout (src/ under tsx), a bootstrap that registers tsx in the worker first.
 */
function workerEntry(): URL {
  const compiled = new URL('./tokenize-service.js', import.meta.url);
  if (existsSync(fileURLToPath(compiled))) return compiled;
  return new URL('./tokenize-worker.mjs', import.meta.url);
}

type Pending = { resolve: (ids: number[]) => void; reject: (err: Error) => void };

export class TokenizerThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private readonly ready: Promise<void>;
  private nextId = 1;
  /** encode() calls in flight: while there are any, the worker keeps the process alive. */
  private busy = 0;

  constructor(modelDir: string) {
    this.worker = new Worker(workerEntry(), {
      workerData: { modelDir },
    });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.on('message', (reply: TokenizeReply) => {
        if (reply.id === 0) return resolve();
        const pending = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (!pending) return;
        if ('ids' in reply) pending.resolve(reply.ids);
        else {
          const { message, hint, user } = reply.error;
          pending.reject(user ? new LoraforgeError(message, hint) : new Error(message));
        }
      });
    });
    this.worker.on('error', (err) => {
      for (const { reject } of this.pending.values()) reject(err);
      this.pending.clear();
    });
    // An idle tokenizer thread must not keep a finished process alive (after the listeners:
    // adding a 'message' listener refs the worker's port again); encode() refs it while busy.
    this.worker.unref();
  }

  async encode(job: TokenizeJob): Promise<number[]> {
    if (this.busy++ === 0) this.worker.ref();
    try {
      await this.ready;
      const id = this.nextId++;
      return await new Promise<number[]>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        this.worker.postMessage({ ...job, id } satisfies TokenizeRequest);
      });
    } finally {
      if (--this.busy === 0) this.worker.unref();
    }
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}
