/**
 * Hugging Face "fast" tokenizers over @huggingface/tokenizers, built from the parsed contents of
 * tokenizer.json and tokenizer_config.json, with no file system (tokenizer.ts reads a model folder;
 * a browser passes what it fetched).
 */
import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { LoraforgeError } from '../util/errors.ts';
// Type only (erased): hf-folder.ts itself reads files, which this module must not.
import type { JsonObject } from './hf-folder.ts';

/** Text to token ids and back. */
export interface Tokenizer {
  /** Token ids of `text`. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`. */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** Id of a vocabulary entry, if any. */
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

/** UTF-8 byte length, without Buffer (this module also runs in browsers). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
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

/** A Hugging Face tokenizer (tokenizer.json) with its special tokens and chat template. */
export class HfTokenizer implements Tokenizer {
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly vocabSize: number;
  /**
   * An upper bound on the bytes of text one token stands for: the longest vocabulary entry in
   * UTF-8 (byte-level and "▁" spellings are never shorter than the bytes they encode).
   */
  readonly maxTokenBytes: number;
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
    let maxBytes = 1;
    for (const [token, id] of impl.get_vocab(true)) {
      maxId = Math.max(maxId, id);
      // The library lists ids missing from a sparse vocabulary with an undefined token.
      if (typeof token === 'string') maxBytes = Math.max(maxBytes, utf8Length(token));
    }
    this.vocabSize = maxId + 1;
    this.maxTokenBytes = maxBytes;
  }

  /** `addSpecialTokens` defaults to true, like calling a transformers tokenizer. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.impl.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Text of `ids`. */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    // The library rejects an empty list; an empty generation is a normal case here.
    if (ids.length === 0) return '';
    return this.impl.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** Id of a vocabulary entry, if any. */
  tokenToId(token: string): number | undefined {
    return this.impl.token_to_id(token);
  }

  /** Vocabulary entry of an id, if any. */
  idToToken(id: number): string | undefined {
    return this.impl.id_to_token(id);
  }
}

export interface TokenizerFiles {
  /** tokenizer.json, parsed. */
  tokenizerJson: object;
  /** tokenizer_config.json, parsed ({} when the folder has none). */
  tokenizerConfig: JsonObject;
  /** chat_template.jinja, used when tokenizer_config.json has no chat_template. */
  chatTemplateFile?: string;
  /** generation_config.json, parsed (extra eos ids). */
  generationConfig?: JsonObject;
}

/** `where` names tokenizer.json in errors (a path or a URL). */
export function tokenizerFromFiles(files: TokenizerFiles, where: string): HfTokenizer {
  const config = files.tokenizerConfig;
  let impl: HfTokenizerImpl;
  try {
    impl = new HfTokenizerImpl(files.tokenizerJson, config);
  } catch (err) {
    throw new LoraforgeError(
      `${where}: unsupported tokenizer (${(err as Error).message.split('\n')[0]})`,
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
  const chatTemplate = pickChatTemplate(config.chat_template) ?? files.chatTemplateFile;
  return new HfTokenizer(impl, specialTokens, chatTemplate, files.generationConfig);
}
