/**
 * The ServeEngine over a real model: one base model in memory, any number of LoRA adapters
 * applied per sequence without merging (rows of one batched step may use different adapters),
 * each adapter chatting with the prompt template it was trained with.
 */
import type { ChatMessage } from '../data/conversation.ts';
import type { PromptTemplate } from '../data/templates.ts';
import { templateFromSpec } from '../data/templates.ts';
import { createTextStreamer, type HfTokenizer } from '../io/tokenizer.ts';
import type { ChatPipeline } from '../infer/pipeline.ts';
import { SequenceDecoder, type Sequence, type StepTokens } from '../infer/sequences.ts';
import type { DecoderModel, LoraLookup } from '../models/decoder.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { baseModelMismatch } from '../peft/base-model.ts';
import { loadAdapterAsync, readAdapterMetaAsync } from '../peft/io.ts';
import { LoraforgeError } from '../util/errors.ts';
import { TokenizerThread } from './tokenizer-thread.ts';
import type { SequenceHandle, SequenceRequest, ServeEngine, TextStreamer } from './engine.ts';

interface ServedAdapter {
  adapter: LoraAdapter;
  lookup: LoraLookup;
  template: PromptTemplate;
}

/**
 * Prompt tokens a sequence prefills per step: long prompts are fed between the running streams'
 * tokens instead of stalling them for the whole prefill (vLLM's chunked prefill, per sequence).
 */
export const DEFAULT_PREFILL_CHUNK = 128;

/** Context length and prefill chunking of the served model. */
export interface ServeEngineOptions {
  /** Longest prompt + completion served (bounds each sequence's KV cache); default min(model, 4096). */
  maxContext?: number;
  /** Prompt tokens one sequence prefills per step (DEFAULT_PREFILL_CHUNK). */
  prefillChunk?: number;
  /** Told when an adapter was trained on another base model (it still loads). */
  onWarning?: (message: string) => void;
}

/**
 * Prompts of more characters than this are tokenized on a worker thread (at ~1 MB/s, 16 K
 * characters hold the event loop for about 10-20 ms; longer ones would stall every stream).
 */
const LONG_PROMPT_CHARS = 16 * 1024;

function isLong(texts: string[]): boolean {
  let chars = 0;
  for (const text of texts) chars += text.length;
  return chars > LONG_PROMPT_CHARS;
}

/** Batched decoding of a loaded base model and named LoRA adapters, for `createServer`. */
export class ModelServeEngine implements ServeEngine {
  private readonly adapters = new Map<string, ServedAdapter>();
  private readonly live = new Map<number, Sequence>();
  private readonly model: DecoderModel;
  private readonly tokenizer: HfTokenizer;
  private readonly decoder: SequenceDecoder;
  private readonly baseTemplate: PromptTemplate;
  private thread: TokenizerThread | undefined;
  private readonly pipeline: ChatPipeline;

  readonly maxContext: number;
  readonly maxPromptBytes: number;

  constructor(
    pipeline: ChatPipeline,
    readonly baseModelId: string,
    options: ServeEngineOptions = {},
  ) {
    if (pipeline.adapter) throw new Error('serve the base model; adapters are loaded per name');
    this.pipeline = pipeline;
    this.model = pipeline.model;
    this.tokenizer = pipeline.tokenizer;
    this.maxContext =
      options.maxContext ?? Math.min(pipeline.model.config.maxPositionEmbeddings, 4096);
    this.maxPromptBytes = this.maxContext * this.tokenizer.maxTokenBytes;
    this.decoder = new SequenceDecoder(this.model, {
      maxContext: this.maxContext,
      prefillChunk: options.prefillChunk ?? DEFAULT_PREFILL_CHUNK,
    });
    this.baseTemplate = pipeline.template;
    this.onWarning = options.onWarning ?? (() => {});
  }

  private readonly onWarning: (message: string) => void;

  get eosTokenIds(): readonly number[] {
    const ids = new Set([...this.tokenizer.stopTokenIds, ...this.baseTemplate.stopTokenIds]);
    for (const { template } of this.adapters.values())
      for (const id of template.stopTokenIds) ids.add(id);
    return [...ids];
  }

  /** Names of the loaded adapters. */
  listAdapters(): string[] {
    return [...this.adapters.keys()];
  }

  async loadAdapter(name: string, dir: string, opts: { within?: string } = {}): Promise<void> {
    if (this.adapters.has(name))
      throw new LoraforgeError(`an adapter named "${name}" is already loaded`);
    const recorded = (await readAdapterMetaAsync(dir, opts)).template;
    const template = recorded ? templateFromSpec(recorded, this.tokenizer) : this.baseTemplate;
    const adapter = await loadAdapterAsync(dir, this.model, opts);
    try {
      const mismatch = baseModelMismatch(dir, adapter.config.baseModelNameOrPath, [
        this.baseModelId,
        this.pipeline.modelDir,
      ]);
      if (mismatch) this.onWarning(mismatch);
      this.adapters.set(name, { adapter, lookup: adapter.lookup(this.model), template });
    } catch (err) {
      adapter.dispose();
      throw err;
    }
  }

  unloadAdapter(name: string): void {
    this.adapters.get(name)?.adapter.dispose();
    this.adapters.delete(name);
  }

  private served(adapter: string | null): ServedAdapter | null {
    if (adapter === null) return null;
    const served = this.adapters.get(adapter);
    if (!served) throw new LoraforgeError(`no adapter named "${adapter}" is loaded`);
    return served;
  }

  encodeChat(messages: ChatMessage[], adapter: string | null): number[] | Promise<number[]> {
    const template = this.served(adapter)?.template ?? this.baseTemplate;
    if (!isLong(messages.map((m) => m.content))) return template.encodePrompt(messages);
    return this.tokenizerThread().encode({ kind: 'chat', messages, spec: template.toJSON() });
  }

  chatStopStrings(adapter: string | null): string[] {
    return (this.served(adapter)?.template ?? this.baseTemplate).stopStrings;
  }

  encodeText(prompt: string): number[] | Promise<number[]> {
    if (!isLong([prompt])) return this.tokenizer.encode(prompt);
    return this.tokenizerThread().encode({ kind: 'text', text: prompt });
  }

  private tokenizerThread(): TokenizerThread {
    this.thread ??= new TokenizerThread(this.pipeline.modelDir);
    return this.thread;
  }

  /** A streaming detokenizer for one sequence. */
  decodeStreamer(): TextStreamer {
    return createTextStreamer(this.tokenizer);
  }

  createSequence(request: SequenceRequest): SequenceHandle {
    const seq = this.decoder.start(
      request.promptIds,
      this.pipeline.sampling(request.sampling),
      this.served(request.adapter)?.lookup ?? null,
      request.maxNewTokens,
    );
    this.live.set(seq.id, seq);
    return { id: seq.id };
  }

  async step(handles: SequenceHandle[]): Promise<StepTokens> {
    return this.decoder.step(handles.map((h) => this.sequence(h)));
  }

  release(handle: SequenceHandle): void {
    const seq = this.live.get(handle.id);
    if (!seq) return;
    this.decoder.release(seq);
    this.live.delete(handle.id);
  }

  private sequence(handle: SequenceHandle): Sequence {
    const seq = this.live.get(handle.id);
    if (!seq) throw new Error(`sequence ${handle.id} was released`);
    return seq;
  }
}
