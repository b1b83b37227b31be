/**
 * Continuous-batching decoder: sequences join and leave between steps; each step prefills new
 * sequences and advances all others together with one batched forward pass.
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

export class SequenceDecoder {
  constructor(
    readonly model: DecoderModel,
    /** Longest prompt + completion a sequence may reach. */
    readonly maxContext: number = model.config.maxPositionEmbeddings,
  ) {}

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
   * Advances every sequence by one sampled token (prefilling the new ones) and returns the tokens.
   * The forward pass is recorded synchronously; only the logits are read back, asynchronously,
   * so the same code decodes on the CPU and on WebGPU.
   */
  async step(seqs: Sequence[], observer: StepObserver = {}): Promise<number[]> {
    for (const seq of seqs) {
      if (seq.tokens.length >= seq.capacity)
        throw new LoraforgeError(`sequence ${seq.id} reached its length limit (${seq.capacity})`);
    }
    const vocab = this.model.config.vocabSize;
    const running = seqs.filter((s) => s.cache !== null);
    // Logits rows per sequence: each prefill gets its own tensor, the running ones share one.
    const pending = noGrad(() =>
      tidy(() => {
        const prefills = seqs
          .filter((seq) => seq.cache === null)
          .map((seq) => {
            seq.cache = new KVCache(this.model.config, 1, seq.capacity);
            const n = seq.tokens.length;
            const h = this.model.forwardHidden(
              { batch: 1, seq: n, inputIds: Int32Array.from(seq.tokens) },
              seq.cache,
              seq.lora ? new Array(n).fill(seq.lora) : undefined,
            );
            return { seqs: [seq], logits: this.model.logits(h, [n - 1]) };
          });
        if (running.length === 0) return prefills;
        const rowLora = running.some((s) => s.lora) ? running.map((s) => s.lora) : undefined;
        const h = this.model.forwardDecode(
          running.map((s) => s.tokens.at(-1)!),
          running.map((s) => s.cache!),
          rowLora,
        );
        return [...prefills, { seqs: running, logits: this.model.logits(h) }];
      }),
    );
    const logitsOf = new Map<Sequence, Float32Array>();
    try {
      for (const { seqs: rows, logits } of pending) {
        const all = await logits.toFloat32();
        rows.forEach((s, i) => logitsOf.set(s, all.subarray(i * vocab, (i + 1) * vocab)));
      }
    } finally {
      for (const { logits } of pending) logits.dispose();
    }
    return seqs.map((seq) => {
      const logits = logitsOf.get(seq)!;
      observer.onLogits?.(seq, logits.slice());
      const token = seq.sampler.sample(logits, seq.tokens);
      seq.tokens.push(token);
      return token;
    });
  }

  release(seq: Sequence): void {
    seq.cache?.dispose();
    seq.cache = null;
  }
}
