/**
 * The tokenizer as llama.cpp reads it from GGUF, in one of its two BPE forms:
 * - `gpt2`, byte-level BPE (Qwen, Llama 3, SmolLM3, Phi-4-mini): token strings as in tokenizer.json, merges,
 *   and the name of the pre-tokenizer (llama.cpp compiles its own regexes per name, so the name
 *   must be one whose regex equals the tokenizer's);
 * - `llama`, SentencePiece BPE with byte fallback (Gemma, Llama 2, Mistral v0.1): pieces with a
 *   score (llama.cpp merges the adjacent pair whose joined piece scores highest; tokenizer.json
 *   keeps no scores, so a piece scores minus the rank of its first merge, which orders merges as
 *   tokenizer.json does), `<0xXX>` byte pieces, and whether a space is put before the text.
 * Both carry token types and the special token ids. Vocabulary rows the tokenizer does not use
 * are filled with `[PAD<id>]` entries of type unused, as llama.cpp's converter does.
 */
import { join } from 'node:path';
import { readJsonObject, type JsonObject } from '../io/hf-folder.ts';
import type { GgufMetadata } from '../io/gguf/format.ts';
import type { HfTokenizer } from '../io/tokenizer.ts';
import { LoraforgeError } from '../util/errors.ts';

/** llama.cpp token types (llama_token_type). */
const TOKEN_TYPE = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/**
 * tiktoken's o200k_base split (Phi-4-mini, gpt-oss: tiktoken vocabularies converted by
 * transformers keep the pattern as the Split regex); llama.cpp calls it gpt-4o.
 */
const O200K_REGEX =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The regex inside a ByteLevel pre-tokenizer with use_regex (GPT-2's). */
const GPT2_BYTE_LEVEL = 'ByteLevel';

/** Pre-tokenizer regex (as in tokenizer.json) → llama.cpp's `tokenizer.ggml.pre` name. */
const PRE_TOKENIZERS: Record<string, string> = {
  [QWEN2_REGEX]: 'qwen2',
  [LLAMA3_REGEX]: 'llama-bpe',
  [O200K_REGEX]: 'gpt-4o',
  [GPT2_BYTE_LEVEL]: 'gpt-2',
};

/** The pre-tokenizer's splitting regexes in order ('ByteLevel' for GPT-2's built-in one). */
function splitPatterns(pre: unknown): string[] {
  if (!pre || typeof pre !== 'object') return [];
  const p = pre as JsonObject;
  if (p.type === 'Sequence' && Array.isArray(p.pretokenizers)) {
    return p.pretokenizers.flatMap(splitPatterns);
  }
  if (p.type === 'Split') {
    const pattern = p.pattern as JsonObject | undefined;
    return [String(pattern?.Regex ?? pattern?.String ?? '')];
  }
  if (p.type === 'ByteLevel' && p.use_regex !== false) return [GPT2_BYTE_LEVEL];
  return [];
}

function isByteLevel(json: JsonObject): boolean {
  const mentions = (node: unknown): boolean =>
    !!node &&
    typeof node === 'object' &&
    ((node as JsonObject).type === 'ByteLevel' ||
      Object.values(node as JsonObject).some((v) => Array.isArray(v) && v.some(mentions)));
  return mentions(json.pre_tokenizer) || mentions(json.decoder);
}

export function preTokenizerName(json: JsonObject, where: string): string {
  const patterns = splitPatterns(json.pre_tokenizer);
  const name = patterns.length === 1 ? PRE_TOKENIZERS[patterns[0]!] : undefined;
  if (!name) {
    throw new LoraforgeError(
      `${where}: the pre-tokenizer (${patterns.length ? patterns.map((p) => JSON.stringify(p)).join(', ') : 'none'}) has no llama.cpp name (missing: tokenizer.ggml.pre)`,
      `loraforge knows llama.cpp's ${Object.values(PRE_TOKENIZERS).join(', ')}`,
    );
  }
  return name;
}

export interface TokenizerMetadataOptions {
  modelDir: string;
  tokenizer: HfTokenizer;
  /** Rows of the embedding matrix (config vocab_size); the token list is padded to it. */
  vocabSize: number;
  /** Jinja chat template to record (tokenizer.chat_template); none when undefined. */
  chatTemplate: string | undefined;
}

/** The Metaspace marker SentencePiece puts for a space. */
const SPACE = '\u2581';

function isReplaceSpace(node: unknown): boolean {
  const n = node as JsonObject | null;
  return (
    n?.type === 'Replace' &&
    (n.pattern as JsonObject | undefined)?.String === ' ' &&
    n.content === SPACE
  );
}

/**
 * Whether a BPE tokenizer.json is SentencePiece-shaped (spaces become "▁" before BPE, unknown
 * characters fall back to byte pieces) and then whether a "▁" is put before the text; undefined
 * for any other shape. Three spellings exist: a Replace normalizer (Gemma: no prefix, its Split
 * on " " then finds no space), Prepend "▁" + Replace (Llama 2, newer files), or a Metaspace
 * pre-tokenizer that does not split (Llama 2 / Mistral, older files).
 */
function sentencePieceSpacePrefix(json: JsonObject, model: JsonObject): boolean | undefined {
  if (model.byte_fallback !== true) return undefined;
  const norm = json.normalizer as JsonObject | null;
  const pre = json.pre_tokenizer as JsonObject | null;
  const splitsOnSpace =
    pre?.type === 'Split' && (pre.pattern as JsonObject | undefined)?.String === ' ';
  if (norm && (pre === null || splitsOnSpace)) {
    if (isReplaceSpace(norm)) return false;
    const steps = norm.type === 'Sequence' ? (norm.normalizers as JsonObject[]) : [];
    const prepends = steps[0]?.type === 'Prepend' && steps[0].prepend === SPACE;
    if (steps.length === 2 && prepends && isReplaceSpace(steps[1])) return true;
  }
  if (!norm && pre?.type === 'Metaspace' && pre.replacement === SPACE && pre.split === false) {
    return pre.prepend_scheme !== 'never';
  }
  return undefined;
}

export function tokenizerMetadata(opts: TokenizerMetadataOptions): GgufMetadata {
  const where = join(opts.modelDir, 'tokenizer.json');
  const json = readJsonObject(where);
  const model = (json.model ?? {}) as JsonObject;
  const spacePrefix = model.type === 'BPE' ? sentencePieceSpacePrefix(json, model) : undefined;
  if (model.type !== 'BPE' || (!isByteLevel(json) && spacePrefix === undefined)) {
    throw new LoraforgeError(
      `${where}: a ${String(model.type)} tokenizer${model.type === 'BPE' ? ' neither byte-level nor SentencePiece-shaped' : ''} has no GGUF form in loraforge (missing: a llama.cpp tokenizer model for it)`,
      'loraforge writes byte-level BPE (gpt2: Qwen, Llama 3) and SentencePiece BPE with byte fallback (llama: Gemma, Llama 2)',
    );
  }
  const sentencePiece = spacePrefix !== undefined;
  const tokens: (string | undefined)[] = new Array(opts.vocabSize);
  const types = new Array<number>(opts.vocabSize).fill(TOKEN_TYPE.normal);
  const place = (token: string, id: number, type: number) => {
    if (id >= opts.vocabSize) {
      throw new LoraforgeError(
        `${where}: token ${JSON.stringify(token)} has id ${id}, beyond the model's vocab_size ${opts.vocabSize}`,
      );
    }
    tokens[id] = token;
    types[id] = type;
  };
  const pieceType = (token: string) => {
    if (!sentencePiece) return TOKEN_TYPE.normal;
    if (token === model.unk_token) return TOKEN_TYPE.unknown;
    return /^<0x[0-9A-F]{2}>$/.test(token) ? TOKEN_TYPE.byte : TOKEN_TYPE.normal;
  };
  for (const [token, id] of Object.entries((model.vocab ?? {}) as Record<string, number>)) {
    place(token, id, pieceType(token));
  }
  for (const added of (json.added_tokens ?? []) as JsonObject[]) {
    const token = String(added.content);
    const type = added.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
    place(token, Number(added.id), token === model.unk_token ? TOKEN_TYPE.unknown : type);
  }
  for (let id = 0; id < opts.vocabSize; id++) {
    if (tokens[id] === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.unused;
    }
  }
  // Merges are "a b" strings, or [a, b] pairs in newer tokenizer.json files.
  const merges = ((model.merges ?? []) as (string | string[])[]).map((m) =>
    Array.isArray(m) ? m.join(' ') : m,
  );
  const t = opts.tokenizer;
  const meta: GgufMetadata = new Map();
  const list = (key: string, itemType: 'string' | 'i32' | 'f32', values: (string | number)[]) =>
    meta.set(key, { type: 'array', itemType, values });
  meta.set('tokenizer.ggml.model', { type: 'string', value: sentencePiece ? 'llama' : 'gpt2' });
  list('tokenizer.ggml.tokens', 'string', tokens as string[]);
  list('tokenizer.ggml.token_type', 'i32', types);
  if (sentencePiece) {
    list('tokenizer.ggml.scores', 'f32', mergeScores(tokens as string[], merges));
    meta.set('tokenizer.ggml.add_space_prefix', { type: 'bool', value: spacePrefix });
    const unk = typeof model.unk_token === 'string' ? tokens.indexOf(model.unk_token) : -1;
    if (unk >= 0) meta.set('tokenizer.ggml.unknown_token_id', { type: 'u32', value: unk });
  } else {
    meta.set('tokenizer.ggml.pre', { type: 'string', value: preTokenizerName(json, where) });
    list('tokenizer.ggml.merges', 'string', merges);
  }
  const id = (key: string, value: number | undefined) => {
    if (value !== undefined) meta.set(key, { type: 'u32', value });
  };
  id('tokenizer.ggml.bos_token_id', t.bosTokenId);
  id('tokenizer.ggml.eos_token_id', t.eosTokenId);
  id('tokenizer.ggml.padding_token_id', t.padTokenId);
  // Whether encoding adds bos is observed rather than read from config flags, which vary by family.
  const addsBos = t.bosTokenId !== undefined && t.encode('a')[0] === t.bosTokenId;
  meta.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: addsBos });
  if (opts.chatTemplate !== undefined) {
    meta.set('tokenizer.chat_template', { type: 'string', value: opts.chatTemplate });
  }
  return meta;
}

/**
 * SentencePiece scores from merge ranks: a piece made by merge k scores -(k + 1) (its first
 * merge, if several make it); pieces no merge makes (characters, bytes, specials) score 0.
 */
function mergeScores(tokens: string[], merges: string[]): number[] {
  const rank = new Map<string, number>();
  merges.forEach((merge, k) => {
    const joined = merge.replace(' ', '');
    if (!rank.has(joined)) rank.set(joined, k);
  });
  return tokens.map((token) => {
    const k = rank.get(token);
    return k === undefined ? 0 : -(k + 1);
  });
}
