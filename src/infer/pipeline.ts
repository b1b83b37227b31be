/**
 * Everything a chat or generation command needs, loaded from a model folder (or Hub id) and an
 * optional adapter: model, tokenizer, the prompt template the adapter was trained with, and a
 * decoder. "What a model was trained with is what it is used with": the adapter's recorded
 * template (or a merged model's, in its own loraforge.json) wins over the model's chat template
 * unless the caller names one explicitly.
 */
import type { ChatMessage, PromptTemplate } from '../data/templates.ts';
import { createTemplate, templateFromSpec } from '../data/templates.ts';
import { readGenerationConfig } from '../io/hf-folder.ts';
import { resolveModel, type ResolveModelOptions } from '../io/hub.ts';
import { loadTokenizer, type HfTokenizer } from '../io/tokenizer.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { loadDecoderConfig, loadModel, type WeightDType } from '../models/load.ts';
import type { Quantization } from '../models/quantized-load.ts';
import { autoWeightDType } from '../models/shapes.ts';
import { LoraAdapter } from '../peft/adapter.ts';
import { baseModelMismatch } from '../peft/base-model.ts';
import { loadAdapter, readAdapterMeta } from '../peft/io.ts';
import { chatReply } from './chat.ts';
import type { SamplingOptions } from './sampling.ts';
import { resolveSampling, samplingDefaults } from './sampling-defaults.ts';
import { SequenceDecoder } from './sequences.ts';
import { generateText, type GenerateOptions, type GenerationResult } from './text-generation.ts';

/** What {@link ChatPipeline.load} loads: a model, optionally a LoRA adapter, and the prompt template. */
export interface PipelineOptions {
  model: string;
  adapter?: string;
  /** Template name; default: the adapter's recorded one, else the model's chat template, else tutorial. */
  template?: string;
  /** Storage of the weights; `auto` (default): bf16 above 100M parameters, else f32. */
  dtype?: WeightDType | 'auto';
  /** Quantize the decoder projections while loading (QLoRA's base, for decoding with it). */
  quantization?: Quantization | null;
  hub?: ResolveModelOptions;
  /** Called after each weight tensor is loaded (for progress bars). */
  onLoadProgress?: (done: number, total: number) => void;
  /** Told about what loads but looks wrong (an adapter trained on another base model). */
  onWarning?: (message: string) => void;
}

/** A loaded model, tokenizer, optional LoRA adapter and prompt template, ready to chat or complete text. */
export class ChatPipeline {
  readonly decoder: SequenceDecoder;
  private currentAdapter: LoraAdapter | null = null;
  private currentTemplate!: PromptTemplate;

  private constructor(
    readonly modelDir: string,
    readonly model: DecoderModel,
    readonly tokenizer: HfTokenizer,
    /** From the model's generation_config.json; what a caller leaves unset comes from here. */
    readonly samplingDefaults: SamplingOptions,
    private readonly opts: PipelineOptions,
  ) {
    this.decoder = new SequenceDecoder(model);
  }

  /** Loads everything for `opts.model` (a folder or Hugging Face id) on the current backend (see `selectBackend`, or use `loadChatPipeline`). */
  static async load(opts: PipelineOptions): Promise<ChatPipeline> {
    const modelDir = await resolveModel(opts.model, opts.hub);
    const tokenizer = await loadTokenizer(modelDir);
    const dtype =
      !opts.dtype || opts.dtype === 'auto'
        ? autoWeightDType(loadDecoderConfig(modelDir))
        : opts.dtype;
    const model = loadModel(modelDir, {
      dtype,
      quantization: opts.quantization,
      onTensor: opts.onLoadProgress,
    });
    const defaults = samplingDefaults(readGenerationConfig(modelDir));
    const pipeline = new ChatPipeline(modelDir, model, tokenizer, defaults, opts);
    pipeline.useAdapter(opts.adapter ?? null);
    return pipeline;
  }

  get adapter(): LoraAdapter | null {
    return this.currentAdapter;
  }

  get template(): PromptTemplate {
    return this.currentTemplate;
  }

  /**
   * Replaces the adapter (null: the base model alone) and the template with the new adapter's
   * recorded one, unless a template was named explicitly. The new adapter is loaded before the
   * old one is let go, so a folder that fails to load leaves the pipeline as it was.
   */
  useAdapter(dir: string | null): void {
    const next = dir === null ? null : loadAdapter(dir, this.model);
    if (next && dir) {
      const mismatch = baseModelMismatch(dir, next.config.baseModelNameOrPath, [
        this.opts.model,
        this.modelDir,
        ...mergedFrom(this.modelDir),
      ]);
      if (mismatch) this.opts.onWarning?.(mismatch);
    }
    if (this.currentAdapter) {
      LoraAdapter.detach(this.model);
      this.currentAdapter.dispose();
    }
    this.currentAdapter = next;
    next?.attach(this.model, { frozen: true });
    // A merged model records its adapter's training template in its own loraforge.json.
    const recorded =
      (dir === null ? undefined : readAdapterMeta(dir).template) ??
      readAdapterMeta(this.modelDir).template;
    this.currentTemplate = this.opts.template
      ? createTemplate(this.opts.template, this.tokenizer)
      : recorded
        ? templateFromSpec(recorded, this.tokenizer)
        : defaultTemplate(this.tokenizer);
  }

  /** The assistant's reply to a conversation. */
  chat(messages: ChatMessage[], opts: GenerateOptions = {}): Promise<GenerationResult> {
    return chatReply(this.decoder, this.tokenizer, this.template, messages, {
      ...opts,
      ...this.sampling(opts),
    });
  }

  /** Plain continuation of raw text (no template). */
  complete(prompt: string, opts: GenerateOptions = {}): Promise<GenerationResult> {
    return generateText(this.decoder, this.tokenizer, this.tokenizer.encode(prompt), {
      ...opts,
      ...this.sampling(opts),
    });
  }

  /** The model's defaults with the caller's explicit settings over them. */
  sampling(requested: SamplingOptions = {}): SamplingOptions {
    return resolveSampling(this.samplingDefaults, requested);
  }

  /** Frees the model and adapter weights; the pipeline must not be used afterwards. */
  dispose(): void {
    this.adapter?.dispose();
    this.model.dispose();
  }
}

/** A merged model is also known by the base it was merged from (its loraforge.json). */
function mergedFrom(modelDir: string): string[] {
  const from = readAdapterMeta(modelDir).mergedFrom as { model?: unknown } | undefined;
  return typeof from?.model === 'string' ? [from.model] : [];
}

/** The model's own chat template when it has one, else the tutorial's Human/Assistant format. */
export function defaultTemplate(tokenizer: HfTokenizer): PromptTemplate {
  return createTemplate(tokenizer.chatTemplate !== undefined ? 'model' : 'tutorial', tokenizer);
}
