/**
 * Hugging Face "fast" tokenizers (tokenizer.json + tokenizer_config.json) over
 * @huggingface/tokenizers, plus a streaming detokenizer for generation.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { LoraforgeError } from '../util/errors.ts';
import { readGenerationConfig, readJsonObject, type JsonObject } from './hf-folder.ts';

export interface Tokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly vocabSize: number;
  /** From tokenizer_config.json (or chat_template.jinja next to it). */
  readonly chatTemplate: string | undefined;
}

/** Special-token strings as chat templates see them (`{{ eos_token }}` ...). */
export interface SpecialTokens {
  bos_token?: string;
  eos_token?: string;
  pad_token?: string;
  unk_token?: string;
  additional_special_tokens?: string[];
}

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;

/** tokenizer_config.json stores a special token as a string or as a serialized AddedToken object. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** Newer configs may hold several named templates; the one named "default" is what HF uses. */
function pickChatTemplate(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const entry = value.find((t) => t?.name === 'default') ?? value[0];
    return typeof entry?.template === 'string' ? entry.template : undefined;
  }
  return undefined;
}

function firstTokenId(value: unknown): number | undefined {
  const ids = Array.isArray(value) ? value : [value];
  return ids.find((id): id is number => Number.isInteger(id));
}

function allTokenIds(value: unknown): number[] {
  return (Array.isArray(value) ? value : [value]).filter((id): id is number =>
    Number.isInteger(id),
  );
}

export class HfTokenizer implements Tokenizer {
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly vocabSize: number;
  /**
   * Every id that should end generation: the tokenizer's eos plus generation_config.json's
   * eos_token_id list (instruct models list both <|im_end|> and <|endoftext|> there).
   */
  readonly stopTokenIds: number[];

  constructor(
    private readonly impl: HfTokenizerImpl,
    readonly specialTokens: SpecialTokens,
    readonly chatTemplate: string | undefined,
    generationConfig: JsonObject | undefined,
  ) {
    const idOf = (token: string | undefined) =>
      token === undefined ? undefined : impl.token_to_id(token);
    this.eosTokenId = idOf(specialTokens.eos_token) ?? firstTokenId(generationConfig?.eos_token_id);
    this.bosTokenId = idOf(specialTokens.bos_token) ?? firstTokenId(generationConfig?.bos_token_id);
    this.padTokenId = idOf(specialTokens.pad_token) ?? firstTokenId(generationConfig?.pad_token_id);
    const stops = allTokenIds(generationConfig?.eos_token_id);
    if (this.eosTokenId !== undefined) stops.unshift(this.eosTokenId);
    this.stopTokenIds = [...new Set(stops)];
    let maxId = -1;
    for (const id of impl.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
  }

  /** `addSpecialTokens` defaults to true, like calling a transformers tokenizer. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.impl.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    // The library rejects an empty list; an empty generation is a normal case here.
    if (ids.length === 0) return '';
    return this.impl.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.impl.id_to_token(id);
  }
}

async function readTokenizerJson(path: string): Promise<object> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new LoraforgeError(
      `${path}: invalid JSON (${(err as Error).message.split('\n')[0]})`,
      'fix or re-download the file',
    );
  }
}

export async function loadTokenizer(dir: string): Promise<HfTokenizer> {
  const tokenizerPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) {
    throw new LoraforgeError(
      `${dir}: no tokenizer.json`,
      'only fast tokenizers are supported; in Python, AutoTokenizer.from_pretrained(...).save_pretrained(dir) writes one',
    );
  }
  const tokenizerJson = await readTokenizerJson(tokenizerPath);
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJsonObject(configPath) : {};

  let impl: HfTokenizerImpl;
  try {
    impl = new HfTokenizerImpl(tokenizerJson, config);
  } catch (err) {
    throw new LoraforgeError(
      `${tokenizerPath}: unsupported tokenizer (${(err as Error).message.split('\n')[0]})`,
    );
  }

  const specialTokens: SpecialTokens = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const content = tokenContent(config[key]);
    if (content !== undefined) specialTokens[key] = content;
  }
  if (Array.isArray(config.additional_special_tokens)) {
    specialTokens.additional_special_tokens = config.additional_special_tokens
      .map(tokenContent)
      .filter((t): t is string => t !== undefined);
  }
  const templateFile = join(dir, 'chat_template.jinja');
  const chatTemplate =
    pickChatTemplate(config.chat_template) ??
    (existsSync(templateFile) ? await readFile(templateFile, 'utf8') : undefined);
  return new HfTokenizer(impl, specialTokens, chatTemplate, readGenerationConfig(dir));
}

export interface TextStreamer {
  /** Adds one generated id; returns the text it completes (often '', e.g. mid UTF-8 character). */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete character decodes to U+FFFD here). */
  flush(): string;
}

/**
 * Incremental detokenizer. Decoding token by token breaks multi-byte characters (one emoji can
 * span several byte-level tokens) and, for SentencePiece-style decoders, the leading space of a
 * word, so it re-decodes a short window that starts one already-emitted chunk back and only
 * emits once the window no longer ends in a partial character (U+FFFD).
 */
export function createTextStreamer(
  tokenizer: Tokenizer,
  opts: { skipSpecialTokens?: boolean } = {},
): TextStreamer {
  const decodeOpts = { skipSpecialTokens: opts.skipSpecialTokens ?? true };
  // The last emitted chunk's ids (decoding context) followed by the ids not emitted yet.
  let window: number[] = [];
  let emitted = 0; // how many ids at the start of `window` were already emitted

  const decodeWindow = (): { prefix: string; full: string } => ({
    prefix: tokenizer.decode(window.slice(0, emitted), decodeOpts),
    full: tokenizer.decode(window, decodeOpts),
  });

  return {
    push(id: number): string {
      window.push(id);
      const { prefix, full } = decodeWindow();
      if (full.length <= prefix.length || full.endsWith('\uFFFD')) return '';
      window = window.slice(emitted);
      emitted = window.length;
      return full.slice(prefix.length);
    },
    flush(): string {
      const { prefix, full } = decodeWindow();
      window = [];
      emitted = 0;
      return full.slice(prefix.length);
    },
  };
}
