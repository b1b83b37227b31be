/**
 * Continuous-batching decoder: sequences join and leave between steps; each step prefills new
 * sequences (a chunk of each prompt at a time, when `prefillChunk` is set) and advances all others
 * together with one batched forward pass.
 */
import { noGrad } from '../engine/tape.ts';
import { tidy } from '../engine/tensor.ts';
import type { DecoderModel, LoraLookup } from '../models/decoder.ts';
import { KVCache } from '../models/kv-cache.ts';
import { LoraforgeError } from '../util/errors.ts';
import { Sampler, type SamplingOptions } from './sampling.ts';

export interface Sequence {
  readonly id: number;
  /** Prompt followed by every sampled token. */
  readonly tokens: number[];
  readonly promptLength: number;
  /** Positions its KV cache holds. */
  readonly capacity: number;
  readonly lora: LoraLookup | null;
  readonly sampler: Sampler;
  cache: KVCache | null;
}

export interface StepObserver {
  /** Raw next-token logits of a sequence before sampling (tests compare them to transformers). */
  onLogits?(seq: Sequence, logits: Float32Array): void;
}

let nextId = 1;

export interface SequenceDecoderOptions {
  /** Longest prompt + completion a sequence may reach (default: the model's context). */
  maxContext?: number;
  /**
   * Most prompt tokens one sequence prefills per step (default: the whole prompt at once). A
   * server sets it so that a long prompt arriving does not stall every running stream for the
   * whole of its prefill: the prompt is fed over several steps, between the others' tokens.
   */
  prefillChunk?: number;
}

/** The next token of every sequence of a step, or null for one still prefilling its prompt. */
export type StepTokens = (number | null)[];

/** Decodes many sequences together, each with its own KV cache, sampler and optional LoRA. */
export class SequenceDecoder {
  readonly maxContext: number;
  private readonly prefillChunk: number;

  constructor(
    readonly model: DecoderModel,
    options: SequenceDecoderOptions = {},
  ) {
    this.maxContext = options.maxContext ?? model.config.maxPositionEmbeddings;
    this.prefillChunk = options.prefillChunk ?? Infinity;
    if (!(this.prefillChunk >= 1))
      throw new LoraforgeError(`prefillChunk must be at least 1, got ${options.prefillChunk}`);
  }

  /**
   * Registers a sequence; `maxNewTokens` sizes its KV cache (prompt + new tokens, at most the
   * context) so concurrent sequences only hold the memory they can use.
   */
  start(
    promptIds: readonly number[],
    sampling: SamplingOptions = {},
    lora: LoraLookup | null = null,
    maxNewTokens = this.maxContext,
  ): Sequence {
    if (promptIds.length === 0) throw new LoraforgeError('empty prompt: nothing to continue');
    if (promptIds.length >= this.maxContext) {
      throw new LoraforgeError(
        `prompt of ${promptIds.length} tokens does not fit the context of ${this.maxContext}`,
      );
    }
    const capacity = Math.min(this.maxContext, promptIds.length + maxNewTokens);
    return {
      id: nextId++,
      tokens: [...promptIds],
      promptLength: promptIds.length,
      capacity,
      lora,
      sampler: new Sampler(sampling),
      cache: null,
    };
  }

  /**
   * Advances every sequence by one sampled token and returns the tokens; a sequence still
   * prefilling its prompt gets the next chunk of it fed instead, and null (no token yet) until
   * its last chunk. The forward pass is recorded synchronously; only the logits are read back,
   * asynchronously, so the same code decodes on the CPU and on WebGPU.
   */
  async step(seqs: Sequence[], observer: StepObserver = {}): Promise<StepTokens> {
    for (const seq of seqs) {
      if (seq.tokens.length >= seq.capacity)
        throw new LoraforgeError(`sequence ${seq.id} reached its length limit (${seq.capacity})`);
    }
    const vocab = this.model.config.vocabSize;
    // Decoding: every token but the last sampled one is in the cache.
    const running = seqs.filter((s) => s.cache !== null && s.cache.length === s.tokens.length - 1);
    // Logits rows per sequence: each finished prefill gets its own tensor, the running ones share one.
    const pending = noGrad(() =>
      tidy(() => {
        const prefills = seqs
          .filter((seq) => !running.includes(seq))
          .flatMap((seq) => {
            seq.cache ??= new KVCache(this.model.config, 1, seq.capacity);
            const from = seq.cache.length;
            const n = Math.min(this.prefillChunk, seq.tokens.length - from);
            const h = this.model.forwardHidden(
              { batch: 1, seq: n, inputIds: Int32Array.from(seq.tokens.slice(from, from + n)) },
              seq.cache,
              seq.lora ? new Array(n).fill(seq.lora) : undefined,
            );
            if (seq.cache.length < seq.tokens.length) return []; // more of the prompt to feed
            return [
              {
                seqs: [seq],
                logits: this.model.logits(h, [n - 1], seq.lora ? [seq.lora] : undefined),
              },
            ];
          });
        if (running.length === 0) return prefills;
        const rowLora = running.some((s) => s.lora) ? running.map((s) => s.lora) : undefined;
        const h = this.model.forwardDecode(
          running.map((s) => s.tokens.at(-1)!),
          running.map((s) => s.cache!),
          rowLora,
        );
        return [...prefills, { seqs: running, logits: this.model.logits(h, undefined, rowLora) }];
      }),
    );
    const tokenOf = new Map<Sequence, number>();
    try {
      for (const { seqs: rows, logits } of pending) {
        // Sampled before the logits are disposed: on CPU backends they are read in place.
        const all = await logits.f32OnHost();
        rows.forEach((seq, i) => {
          const own = all.subarray(i * vocab, (i + 1) * vocab);
          observer.onLogits?.(seq, own.slice());
          tokenOf.set(seq, seq.sampler.sample(own, seq.tokens, seq.promptLength));
        });
      }
    } finally {
      for (const { logits } of pending) logits.dispose();
    }
    return seqs.map((seq) => {
      const token = tokenOf.get(seq);
      if (token === undefined) return null;
      seq.tokens.push(token);
      return token;
    });
  }

  /** Frees a sequence's KV cache (call when it is finished). */
  release(seq: Sequence): void {
    seq.cache?.dispose();
    seq.cache = null;
  }
}
