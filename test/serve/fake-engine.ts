/**
 * A deterministic stand-in for the model (a test double, also behind `bench/serve.ts --fake`): one token per
 * Unicode code point, and every sequence replies with a fixed text followed by EOS. A step takes
 * `stepDelayMs + perSequenceMs * batchSize`, so batching pays off the way it does on real hardware
 * (the fixed part is the weight traffic every sequence shares).
 */
import type {
  ChatMessage,
  SequenceHandle,
  SequenceRequest,
  ServeEngine,
  TextStreamer,
} from '../../src/serve/engine.ts';

export const FAKE_EOS = 0;

export interface FakeEngineOptions {
  baseModelId?: string;
  maxContext?: number;
  stepDelayMs?: number;
  perSequenceMs?: number;
  /** KV-cache tokens shared by all live sequences (default: unlimited). */
  kvBudgetTokens?: number;
  /** The text each sequence generates before EOS. */
  reply?: (prompt: string, adapter: string | null) => string;
  /** Prompt tokens prefilled per step, as a real engine's chunked prefill (default: all). */
  prefillChunk?: number;
}

interface FakeSequence extends SequenceHandle {
  readonly replyIds: number[];
  readonly reserved: number;
  generated: number;
  /** Steps left that only feed prompt chunks (and return null). */
  prefillStepsLeft: number;
}

const reservation = (request: SequenceRequest) => request.promptIds.length + request.maxNewTokens;
const toIds = (text: string): number[] => Array.from(text, (ch) => ch.codePointAt(0)!);

export class FakeEngine implements ServeEngine {
  readonly baseModelId: string;
  readonly eosTokenIds = [FAKE_EOS];
  readonly maxContext: number;
  readonly maxPromptBytes: number;
  /** How many steps ran with each batch size: lets tests see that requests were batched. */
  readonly stepsByBatchSize = new Map<number, number>();
  readonly live = new Map<number, FakeSequence>();
  releasedCount = 0;
  readonly kvBudgetTokens: number;
  private reservedTokens = 0;

  private readonly adapters = new Map<string, string>();
  private readonly options: Required<
    Pick<FakeEngineOptions, 'stepDelayMs' | 'perSequenceMs' | 'reply' | 'prefillChunk'>
  >;
  private nextId = 1;
  /** Ids inside the pending step; releasing one of them is a scheduler bug. */
  private stepping: Set<number> | null = null;

  constructor(options: FakeEngineOptions = {}) {
    this.baseModelId = options.baseModelId ?? 'fake-base';
    this.maxContext = options.maxContext ?? 4096;
    this.maxPromptBytes = this.maxContext * 4; // one id per code point, at most 4 bytes each
    this.kvBudgetTokens = options.kvBudgetTokens ?? Infinity;
    this.options = {
      stepDelayMs: options.stepDelayMs ?? 0,
      perSequenceMs: options.perSequenceMs ?? 0,
      reply: options.reply ?? ((_prompt, adapter) => `Hello from ${adapter ?? this.baseModelId}!`),
      prefillChunk: options.prefillChunk ?? Infinity,
    };
  }

  listAdapters(): string[] {
    return [...this.adapters.keys()];
  }

  async loadAdapter(name: string, dir: string): Promise<void> {
    this.adapters.set(name, dir);
  }

  unloadAdapter(name: string): void {
    this.adapters.delete(name);
  }

  adapterDir(name: string): string | undefined {
    return this.adapters.get(name);
  }

  encodeChat(messages: ChatMessage[], _adapter: string | null): number[] {
    const rendered = messages.map((m) => `${m.role}: ${m.content}\n`).join('') + 'assistant:';
    return toIds(rendered);
  }

  chatStopStrings(_adapter: string | null): string[] {
    return ['\nuser:'];
  }

  encodeText(prompt: string): number[] {
    return toIds(prompt);
  }

  decodeStreamer(): TextStreamer {
    return { push: (id) => String.fromCodePoint(id), flush: () => '' };
  }

  /** Reserves prompt + maxNewTokens per live sequence against `kvBudgetTokens`, like a real KV pool. */
  hasCapacityFor(request: SequenceRequest): boolean {
    return this.reservedTokens + reservation(request) <= this.kvBudgetTokens;
  }

  createSequence(request: SequenceRequest): SequenceHandle {
    const prompt = request.promptIds.map((id) => String.fromCodePoint(id)).join('');
    const seq: FakeSequence = {
      id: this.nextId++,
      replyIds: toIds(this.options.reply(prompt, request.adapter)),
      generated: 0,
      reserved: reservation(request),
      prefillStepsLeft: Math.ceil(request.promptIds.length / this.options.prefillChunk) - 1,
    };
    this.reservedTokens += seq.reserved;
    this.live.set(seq.id, seq);
    return seq;
  }

  async step(seqs: SequenceHandle[]): Promise<(number | null)[]> {
    // The server promises one step at a time on live sequences; breaking that is a scheduler bug.
    if (this.stepping) throw new Error('FakeEngine: overlapping step() calls');
    const batch = seqs.map((s) => this.liveSequence(s));
    this.stepping = new Set(batch.map((s) => s.id));
    try {
      this.stepsByBatchSize.set(batch.length, (this.stepsByBatchSize.get(batch.length) ?? 0) + 1);
      const delay = this.options.stepDelayMs + this.options.perSequenceMs * batch.length;
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
      return batch.map((seq) => {
        if (seq.prefillStepsLeft > 0) {
          seq.prefillStepsLeft--;
          return null;
        }
        return seq.replyIds[seq.generated++] ?? FAKE_EOS;
      });
    } finally {
      this.stepping = null;
    }
  }

  release(seq: SequenceHandle): void {
    const live = this.liveSequence(seq);
    if (this.stepping?.has(seq.id)) {
      throw new Error(`FakeEngine: sequence ${seq.id} released mid-step`);
    }
    this.live.delete(seq.id);
    this.reservedTokens -= live.reserved;
    this.releasedCount++;
  }

  /** Largest batch any step has seen. */
  maxBatchSeen(): number {
    return Math.max(0, ...this.stepsByBatchSize.keys());
  }

  private liveSequence(seq: SequenceHandle): FakeSequence {
    const found = this.live.get(seq.id);
    if (!found) throw new Error(`FakeEngine: sequence ${seq.id} is not live`);
    return found;
  }
}
