/**
 * The tokenizer as llama.cpp reads it from GGUF: a gpt2-style byte-level BPE vocabulary (token
 * strings as in tokenizer.json, merges, token types), the special token ids, and the name of the
 * pre-tokenizer (llama.cpp compiles its own regexes per name, so the name must be one whose
 * regex equals the tokenizer's). Vocabulary rows the tokenizer does not use are filled with
 * `[PAD<id>]` entries of type unused, as llama.cpp's converter does.
 */
import { join } from 'node:path';
import { readJsonObject, type JsonObject } from '../io/hf-folder.ts';
import type { GgufMetadata } from '../io/gguf/format.ts';
import type { HfTokenizer } from '../io/tokenizer.ts';
import { LoraforgeError } from '../util/errors.ts';

/** llama.cpp token types (llama_token_type). */
const TOKEN_TYPE = { normal: 1, control: 3, userDefined: 4, unused: 5 } as const;

const QWEN2_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The regex inside a ByteLevel pre-tokenizer with use_regex (GPT-2's). */
const GPT2_BYTE_LEVEL = 'ByteLevel';

/** Pre-tokenizer regex (as in tokenizer.json) → llama.cpp's `tokenizer.ggml.pre` name. */
const PRE_TOKENIZERS: Record<string, string> = {
  [QWEN2_REGEX]: 'qwen2',
  [LLAMA3_REGEX]: 'llama-bpe',
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

export function tokenizerMetadata(opts: TokenizerMetadataOptions): GgufMetadata {
  const where = join(opts.modelDir, 'tokenizer.json');
  const json = readJsonObject(where);
  const model = (json.model ?? {}) as JsonObject;
  if (model.type !== 'BPE' || !isByteLevel(json)) {
    throw new LoraforgeError(
      `${where}: a ${String(model.type)} tokenizer${model.type === 'BPE' ? ' without byte-level encoding' : ''} has no GGUF form in loraforge (missing: a llama.cpp tokenizer model for it)`,
      'loraforge writes byte-level BPE tokenizers (tokenizer.ggml.model gpt2: Qwen2, Llama 3)',
    );
  }
  const pre = preTokenizerName(json, where);
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
  for (const [token, id] of Object.entries((model.vocab ?? {}) as Record<string, number>)) {
    place(token, id, TOKEN_TYPE.normal);
  }
  for (const added of (json.added_tokens ?? []) as JsonObject[]) {
    place(
      String(added.content),
      Number(added.id),
      added.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined,
    );
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
  meta.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
  meta.set('tokenizer.ggml.pre', { type: 'string', value: pre });
  meta.set('tokenizer.ggml.tokens', {
    type: 'array',
    itemType: 'string',
    values: tokens as string[],
  });
  meta.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', values: types });
  meta.set('tokenizer.ggml.merges', { type: 'array', itemType: 'string', values: merges });
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
