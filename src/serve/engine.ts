/**
 * The contract between the HTTP server and whatever runs the model. The server never touches
 * tensors: it renders prompts to token ids, asks for sequences, and advances every active sequence
 * by one token per `step()` call (continuous batching: the set of sequences may change between
 * steps, and sequences in one step may use different adapters).
 *
 * Threading model: the server calls the engine from one event loop and never starts a `step()`
 * while another is pending, nor calls `release()` on a sequence that is inside a pending step
 * (it waits for the step to settle). `createSequence()` and `release()` are cheap bookkeeping.
 */
import type { ChatMessage } from '../data/conversation.ts';
import type { SamplingOptions } from '../infer/sampling.ts';

export type { ChatMessage };

/**
 * What the request asked for; a field left undefined takes the model's default
 * (generation_config.json), exactly as `loraforge generate` does. A `seed` seeds the sequence's
 * own RNG so a request is reproducible whatever it is batched with.
 */
export type SamplingParams = SamplingOptions;

/** What a sequence needs; `maxNewTokens` lets an engine size the KV cache up front. */
export interface SequenceRequest {
  promptIds: number[];
  /** Adapter name, or null for the base model. */
  adapter: string | null;
  sampling: SamplingParams;
  /** The server never steps a sequence past this many generated tokens (EOS included). */
  maxNewTokens: number;
}

/** Opaque to the server; `id` is unique among live sequences and is only used for diagnostics. */
export interface SequenceHandle {
  readonly id: number;
}

/** Turns token ids back into text incrementally (multi-byte characters may span tokens). */
export interface TextStreamer {
  /** Text that became final with this token ('' while a character is incomplete). */
  push(tokenId: number): string;
  /** Whatever is still buffered at the end of generation. */
  flush(): string;
}

export interface ServeEngine {
  /** Served under this name in /v1/models and accepted as `model` (no adapter). */
  readonly baseModelId: string;
  /** Generation ends when one of these is sampled; the token itself is not turned into text. */
  readonly eosTokenIds: readonly number[];
  /** Prompt plus generated tokens may not exceed this. */
  readonly maxContext: number;
  /** A prompt of more UTF-8 bytes cannot fit maxContext: refused (413) before tokenizing. */
  readonly maxPromptBytes: number;

  listAdapters(): string[];
  /**
   * Loads a PEFT adapter folder (already checked to lie inside the served adapters folder);
   * `within`: the real path of that folder, which no file read may leave through a symlink.
   */
  loadAdapter(name: string, dir: string, opts?: { within?: string }): Promise<void>;
  /** Frees an adapter; the server only calls this when no live sequence uses it. */
  unloadAdapter(name: string): void;

  /**
   * Token ids of a chat prompt rendered with the adapter's recorded template (base's if null);
   * a promise where a long prompt is tokenized off the event loop.
   */
  encodeChat(messages: ChatMessage[], adapter: string | null): number[] | Promise<number[]>;
  /** Extra stop strings the template implies (e.g. "\nHuman:"), trimmed from chat replies. */
  chatStopStrings(adapter: string | null): string[];
  /** Token ids of a raw completion prompt (special tokens such as BOS as the model expects). */
  encodeText(prompt: string): number[] | Promise<number[]>;
  decodeStreamer(): TextStreamer;

  /**
   * Optional KV-cache admission control: while it returns false the request waits in the queue
   * (in order; nothing overtakes it) until running sequences are released. When it returns false
   * with nothing running, the request can never fit and fails with 503. Without it, `maxBatch`
   * alone bounds memory.
   */
  hasCapacityFor?(request: SequenceRequest): boolean;
  /** Registers a sequence; nothing is computed until it first appears in `step()`. */
  createSequence(request: SequenceRequest): SequenceHandle;
  /**
   * Advances each sequence by one token and resolves to the sampled ids, in order. A sequence's
   * first steps run its prefill: null for it while the prompt is still being fed (chunked
   * prefill), its first token with the last chunk. Rejecting fails every sequence in the call.
   */
  step(seqs: SequenceHandle[]): Promise<(number | null)[]>;
  /** Frees the sequence's KV cache; the handle is dead afterwards. */
  release(seq: SequenceHandle): void;
}
