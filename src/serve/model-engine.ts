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
import { loadAdapter, readAdapterMeta } from '../peft/io.ts';
import { LoraforgeError } from '../util/errors.ts';
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
}

/** Batched decoding of a loaded base model and named LoRA adapters, for `createServer`. */
export class ModelServeEngine implements ServeEngine {
  private readonly adapters = new Map<string, ServedAdapter>();
  private readonly live = new Map<number, Sequence>();
  private readonly model: DecoderModel;
  private readonly tokenizer: HfTokenizer;
  private readonly decoder: SequenceDecoder;
  private readonly baseTemplate: PromptTemplate;

  readonly maxContext: number;

  constructor(
    pipeline: ChatPipeline,
    readonly baseModelId: string,
    options: ServeEngineOptions = {},
  ) {
    if (pipeline.adapter) throw new Error('serve the base model; adapters are loaded per name');
    this.model = pipeline.model;
    this.tokenizer = pipeline.tokenizer;
    this.maxContext =
      options.maxContext ?? Math.min(pipeline.model.config.maxPositionEmbeddings, 4096);
    this.decoder = new SequenceDecoder(this.model, {
      maxContext: this.maxContext,
      prefillChunk: options.prefillChunk ?? DEFAULT_PREFILL_CHUNK,
    });
    this.baseTemplate = pipeline.template;
  }

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

  async loadAdapter(name: string, dir: string): Promise<void> {
    if (this.adapters.has(name))
      throw new LoraforgeError(`an adapter named "${name}" is already loaded`);
    const adapter = loadAdapter(dir, this.model);
    const recorded = readAdapterMeta(dir).template;
    const template = recorded ? templateFromSpec(recorded, this.tokenizer) : this.baseTemplate;
    this.adapters.set(name, { adapter, lookup: adapter.lookup(), template });
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

  encodeChat(messages: ChatMessage[], adapter: string | null): number[] {
    return (this.served(adapter)?.template ?? this.baseTemplate).encodePrompt(messages);
  }

  chatStopStrings(adapter: string | null): string[] {
    return (this.served(adapter)?.template ?? this.baseTemplate).stopStrings;
  }

  encodeText(prompt: string): number[] {
    return this.tokenizer.encode(prompt);
  }

  /** A streaming detokenizer for one sequence. */
  decodeStreamer(): TextStreamer {
    return createTextStreamer(this.tokenizer);
  }

  createSequence(request: SequenceRequest): SequenceHandle {
    const { temperature, topP, seed } = request.sampling;
    const seq = this.decoder.start(
      request.promptIds,
      { temperature, topP, seed },
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
