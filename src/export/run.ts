/**
 * `loraforge export`: loads what an export needs (config, tokenizer, adapter, the prompt template
 * it was trained with) and writes the requested format.
 */
import { basename, join, resolve } from 'node:path';
import { templateFromSpec, type PromptTemplate } from '../data/templates.ts';
import { defaultTemplate } from '../infer/pipeline.ts';
import { loadTokenizer, type HfTokenizer } from '../io/tokenizer.ts';
import type { DecoderConfig } from '../models/config.ts';
import { loadDecoderConfig } from '../models/load.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { loadAdapterForConfig, readAdapterMeta } from '../peft/io.ts';
import { LoraforgeError } from '../util/errors.ts';
import { ggufChatTemplate, ollamaChatFormat } from './chat-formats.ts';
import { exportGgufAdapter } from './gguf-adapter.ts';
import { exportGgufModel } from './gguf-model.ts';
import { exportOllamaFolder } from './ollama.ts';
import { EXPORT_TYPES, type ExportType } from './quant-mix.ts';

/** Output formats: merged GGUF, LoRA adapter GGUF, Ollama folder (GGUFs + Modelfile). */
export const EXPORT_FORMATS = ['gguf', 'gguf-adapter', 'ollama'] as const;
/** One of {@link EXPORT_FORMATS}. */
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** What `loraforge export` takes; `format` and `type` are checked against the lists above. */
export interface ExportOptions {
  modelDir: string;
  adapterDir?: string;
  format: string;
  type: string;
  out: string;
  overwrite?: boolean;
  /** ollama: merge the adapter into model.gguf instead of writing adapter.gguf + ADAPTER. */
  merge?: boolean;
  /** Called after each tensor is written (progress). */
  onTensor?: (index: number, total: number, name: string) => void;
}

export interface ExportSources {
  modelDir: string;
  config: DecoderConfig;
  tokenizer: HfTokenizer;
  adapter: LoraAdapter | undefined;
  /** The template the adapter was trained with (else the model's default). */
  template: PromptTemplate;
  /** The template as Jinja, for the GGUF. */
  chatTemplate: string;
  /** Token id → its text (special tokens included). */
  tokenText: (id: number) => string;
}

function checkChoice<T extends string>(flag: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new LoraforgeError(
      `${flag} ${JSON.stringify(value)} is not supported`,
      `choose one of ${choices.join(', ')}`,
    );
  }
  return value as T;
}

export async function loadExportSources(
  modelDir: string,
  adapterDir?: string,
): Promise<ExportSources> {
  const config = loadDecoderConfig(modelDir);
  const tokenizer = await loadTokenizer(modelDir);
  let adapter: LoraAdapter | undefined;
  let template = defaultTemplate(tokenizer);
  if (adapterDir) {
    adapter = loadAdapterForConfig(adapterDir, config);
    const recorded = readAdapterMeta(adapterDir).template;
    if (recorded) template = templateFromSpec(recorded, tokenizer);
  }
  const tokenText = (id: number) => tokenizer.decode([id], { skipSpecialTokens: false });
  return {
    modelDir,
    config,
    tokenizer,
    adapter,
    template,
    chatTemplate: ggufChatTemplate(template, tokenText),
    tokenText,
  };
}

/** What was written, for the command's closing message. */
export interface ExportResult {
  /** `ollama create …` for an Ollama folder. */
  ollamaCreate?: string;
}

/**
 * Writes a model folder (with an adapter merged in, or the adapter alone) as GGUF, or an Ollama
 * folder; throws LoraforgeError for what GGUF or llama.cpp cannot express, naming the piece.
 */
export async function runExport(opts: ExportOptions): Promise<ExportResult> {
  const format = checkChoice('--format', opts.format, EXPORT_FORMATS);
  const type: ExportType = checkChoice('--type', opts.type, EXPORT_TYPES);
  if (format === 'gguf-adapter' && !opts.adapterDir) {
    throw new LoraforgeError('--format gguf-adapter needs --adapter <dir>');
  }
  const s = await loadExportSources(opts.modelDir, opts.adapterDir);
  try {
    return await writeExport(opts, format, type, s);
  } finally {
    s.adapter?.dispose();
  }
}

async function writeExport(
  opts: ExportOptions,
  format: ExportFormat,
  type: ExportType,
  s: ExportSources,
): Promise<ExportResult> {
  const model = (path: string, adapter: LoraAdapter | undefined, overwrite?: boolean) =>
    exportGgufModel({
      modelDir: s.modelDir,
      config: s.config,
      tokenizer: s.tokenizer,
      adapter,
      type,
      chatTemplate: s.chatTemplate,
      out: path,
      overwrite,
      onTensor: opts.onTensor,
    });
  const adapterFile = (path: string, adapter: LoraAdapter, overwrite?: boolean) =>
    exportGgufAdapter({
      adapterDir: opts.adapterDir!,
      modelDir: s.modelDir,
      config: s.config,
      adapter,
      type,
      out: path,
      overwrite,
    });
  if (format === 'gguf') await model(opts.out, s.adapter, opts.overwrite);
  else if (format === 'gguf-adapter') {
    await adapterFile(opts.out, s.adapter!, opts.overwrite);
  } else {
    const separate = s.adapter && !opts.merge ? s.adapter : undefined;
    await exportOllamaFolder({
      out: opts.out,
      overwrite: opts.overwrite,
      chat: ollamaChatFormat(s.template, s.tokenText),
      writeModel: (path) => model(path, separate ? undefined : s.adapter),
      writeAdapter: separate && ((path) => adapterFile(path, separate)),
    });
    return {
      ollamaCreate: `ollama create ${ollamaName(opts.out)} -f ${join(opts.out, 'Modelfile')}`,
    };
  }
  return {};
}

/** Ollama model names are lowercase letters, digits and - _ . */
function ollamaName(dir: string): string {
  return (
    basename(resolve(dir))
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-') || 'loraforge-model'
  );
}

/** The command's defaults: a merged f16 GGUF. */
export const exportDefaults = { format: 'gguf', type: 'f16' } as const;
