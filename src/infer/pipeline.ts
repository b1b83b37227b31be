/**
 * Everything a chat or generation command needs, loaded from a model folder (or Hub id) and an
 * optional adapter: model, tokenizer, the prompt template the adapter was trained with, and a
 * decoder. "What a model was trained with is what it is used with": the adapter's recorded
 * template wins over the model's own unless the caller names one explicitly.
 */
import type { ChatMessage, PromptTemplate } from '../data/templates.ts';
import { createTemplate, templateFromSpec } from '../data/templates.ts';
import { resolveModel, type ResolveModelOptions } from '../io/hub.ts';
import { loadTokenizer, type HfTokenizer } from '../io/tokenizer.ts';
import type { DecoderModel } from '../models/decoder.ts';
import { loadDecoderConfig, loadModel, type WeightDType } from '../models/load.ts';
import { autoWeightDType } from '../models/shapes.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { loadAdapter, readAdapterMeta } from '../peft/io.ts';
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
  hub?: ResolveModelOptions;
  /** Called after each weight tensor is loaded (for progress bars). */
  onLoadProgress?: (done: number, total: number) => void;
}

/** A loaded model, tokenizer, optional LoRA adapter and prompt template, ready to chat or complete text. */
export class ChatPipeline {
  readonly decoder: SequenceDecoder;

  private constructor(
    readonly modelDir: string,
    readonly model: DecoderModel,
    readonly tokenizer: HfTokenizer,
    readonly template: PromptTemplate,
    readonly adapter: LoraAdapter | null,
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
    const model = loadModel(modelDir, { dtype, onTensor: opts.onLoadProgress });
    let adapter: LoraAdapter | null = null;
    let recorded: unknown;
    if (opts.adapter) {
      adapter = loadAdapter(opts.adapter, model);
      adapter.attach(model);
      recorded = readAdapterMeta(opts.adapter).template;
    }
    const template = opts.template
      ? createTemplate(opts.template, tokenizer)
      : recorded
        ? templateFromSpec(recorded, tokenizer)
        : defaultTemplate(tokenizer);
    return new ChatPipeline(modelDir, model, tokenizer, template, adapter);
  }

  /** The assistant's reply to a conversation. */
  chat(messages: ChatMessage[], opts: GenerateOptions = {}): Promise<GenerationResult> {
    return generateText(this.decoder, this.tokenizer, this.template.encodePrompt(messages), {
      stopStrings: this.template.stopStrings,
      stopTokenIds: this.template.stopTokenIds,
      ...opts,
    });
  }

  /** Plain continuation of raw text (no template). */
  complete(prompt: string, opts: GenerateOptions = {}): Promise<GenerationResult> {
    return generateText(this.decoder, this.tokenizer, this.tokenizer.encode(prompt), opts);
  }

  /** Frees the model and adapter weights; the pipeline must not be used afterwards. */
  dispose(): void {
    this.adapter?.dispose();
    this.model.dispose();
  }
}

/** The model's own chat template when it has one, else the tutorial's Human/Assistant format. */
export function defaultTemplate(tokenizer: HfTokenizer): PromptTemplate {
  return createTemplate(tokenizer.chatTemplate !== undefined ? 'model' : 'tutorial', tokenizer);
}
