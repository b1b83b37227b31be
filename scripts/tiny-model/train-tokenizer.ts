/**
 * Trains the tiny demo model's tokenizer: a Qwen2-style byte-level BPE learned from the corpus of
 * `corpus.ts`, written as a Hugging Face `tokenizer.json` + `tokenizer_config.json`.
 *
 * The pre-tokenizer (Qwen2's split regex, then the byte-to-unicode mapping) is run through
 * `@huggingface/tokenizers` itself while training, so the words the merges are learned on are
 * exactly the words the runtime tokenizer will later cut text into.
 *
 * The output is deterministic: same corpus, same files, byte for byte.
 *
 * Usage: `tsx scripts/tiny-model/train-tokenizer.ts [outDir]` (default assets/tiny-chat)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SequencePreTokenizer } from '@huggingface/tokenizers';
import { generateCorpus, TINY_MODEL_SYSTEM_PROMPT, type CorpusRecord } from './corpus.ts';

/**
 * Total vocabulary including the special tokens: a multiple of 64 (whole GEMM tiles) that the
 * corpus can fill (it runs out of pairs seen twice at about 2200 tokens).
 */
export const TINY_VOCAB_SIZE = 2048;

/** Ids follow the merges in this order, as in Qwen2 (eos `<|im_end|>`, pad `<|endoftext|>`). */
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

/** Longest prompt + answer the tiny model is meant for; recorded as `model_max_length`. */
export const TINY_MODEL_MAX_LENGTH = 1024;

/**
 * Qwen2's pre-tokenizer split (Oniguruma syntax, as in its tokenizer.json). Digits are split one
 * by one (`\p{N}`), which keeps numbers compositional for the arithmetic part of the corpus.
 */
const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const BYTE_LEVEL = { add_prefix_space: false, trim_offsets: false, use_regex: false } as const;

const PRE_TOKENIZER = {
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', ...BYTE_LEVEL },
  ],
} as const;

/**
 * GPT-2's reversible byte → printable character map (Qwen2 uses the same): printable Latin-1
 * bytes map to themselves, the rest to U+0100 onwards. The returned order is the id order of the
 * 256 base tokens: first the bytes that map to themselves, then the others.
 */
export function byteLevelAlphabet(): { byte: number; char: string }[] {
  const selfMapped = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const alphabet: { byte: number; char: string }[] = [];
  for (let b = 0; b < 256; b++)
    if (selfMapped(b)) alphabet.push({ byte: b, char: String.fromCharCode(b) });
  let next = 256;
  for (let b = 0; b < 256; b++)
    if (!selfMapped(b)) alphabet.push({ byte: b, char: String.fromCharCode(next++) });
  return alphabet;
}

export interface BpeModel {
  /** Token → id, ids 0..n-1 without gaps (the 256 bytes first, then merged tokens in merge order). */
  vocab: Map<string, number>;
  /** Merge rules in priority order. */
  merges: [string, string][];
}

export interface BpeTrainOptions {
  /** Size of the BPE vocabulary (bytes + merges), special tokens not included. */
  vocabSize: number;
  /** A pair seen fewer times than this is never merged. */
  minFrequency?: number;
  /**
   * Longest run of Chinese characters one token may hold. The corpus repeats its Chinese
   * templates so often that unbounded BPE learns whole clauses (你叫什么名字) as single tokens;
   * a cap of 2, the length of most Chinese words, keeps paraphrases made of shared tokens.
   */
  maxHanCharsPerToken?: number;
}

/** Counts the byte-level pre-tokens ("words") of the texts. */
export function countWords(texts: Iterable<string>): Map<string, number> {
  const preTokenizer = new SequencePreTokenizer(PRE_TOKENIZER as never);
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const word of preTokenizer.pre_tokenize_text(text.normalize('NFC'))) {
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  return counts;
}

/** A pair of token ids is packed into one number (a Map key); ids stay far below 2^20. */
const PAIR_BASE = 1 << 20;

function unpackPair(pair: number): [number, number] {
  return [Math.floor(pair / PAIR_BASE), pair % PAIR_BASE];
}

/**
 * Classic BPE training: repeatedly merge the most frequent adjacent pair of symbols, weighting
 * each word by its count. Pair counts are updated incrementally, only for the words that contain
 * the merged pair. Ties go to the lexicographically smaller pair so the result never depends on
 * iteration order.
 */
export function trainBpe(wordCounts: Map<string, number>, options: BpeTrainOptions): BpeModel {
  const minFrequency = options.minFrequency ?? 2;
  const maxHanChars = options.maxHanCharsPerToken ?? 2;
  const tokens = byteLevelAlphabet().map((entry) => entry.char);
  const tokenId = new Map(tokens.map((token, id) => [token, id]));
  const words = [...wordCounts.keys()].sort();
  const counts = words.map((w) => wordCounts.get(w)!);
  const symbols = words.map((w) => [...w].map((ch) => tokenId.get(ch)!));

  const key = (a: number, b: number) => a * PAIR_BASE + b;
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const rejected = new Set<number>();
  const addPairs = (wordIndex: number, sign: 1 | -1) => {
    const s = symbols[wordIndex];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = key(s[i], s[i + 1]);
      if (rejected.has(k)) continue;
      pairCounts.set(k, (pairCounts.get(k) ?? 0) + sign * counts[wordIndex]);
      if (sign > 0) {
        let set = pairWords.get(k);
        if (!set) pairWords.set(k, (set = new Set()));
        set.add(wordIndex);
      }
    }
  };
  symbols.forEach((_, i) => addPairs(i, 1));

  const merges: [string, string][] = [];
  while (tokens.length < options.vocabSize) {
    let best = -1;
    let bestCount = minFrequency - 1;
    for (const [k, count] of pairCounts) {
      if (count > bestCount || (count === bestCount && best >= 0 && comparePairs(k, best) < 0)) {
        best = k;
        bestCount = count;
      }
    }
    if (best < 0) break;
    const [a, b] = unpackPair(best);
    if (hanCharCount(tokens[a] + tokens[b]) > maxHanChars) {
      rejected.add(best);
      pairCounts.delete(best);
      continue;
    }
    // Two merge paths can spell the same token ("ab"+"c", "a"+"bc"): it keeps its first id.
    const mergedText = tokens[a] + tokens[b];
    let merged = tokenId.get(mergedText);
    if (merged === undefined) {
      merged = tokens.length;
      tokens.push(mergedText);
      tokenId.set(mergedText, merged);
    }
    merges.push([tokens[a], tokens[b]]);
    for (const wordIndex of pairWords.get(best)!) {
      addPairs(wordIndex, -1);
      symbols[wordIndex] = mergePair(symbols[wordIndex], a, b, merged);
      addPairs(wordIndex, 1);
    }
    pairCounts.delete(best);
    pairWords.delete(best);
  }
  return { vocab: tokenId, merges };

  function comparePairs(x: number, y: number): number {
    const [xa, xb] = unpackPair(x).map((id) => tokens[id]);
    const [ya, yb] = unpackPair(y).map((id) => tokens[id]);
    return xa !== ya ? (xa < ya ? -1 : 1) : xb < yb ? -1 : xb > yb ? 1 : 0;
  }
}

const unicodeToByte = new Map(byteLevelAlphabet().map(({ byte, char }) => [char, byte]));
const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * Chinese characters in a byte-level token. Bytes of a partial character decode to U+FFFD and
 * count too, which also keeps merges from growing across character boundaries past the cap.
 */
function hanCharCount(token: string): number {
  const text = utf8.decode(Uint8Array.from([...token], (ch) => unicodeToByte.get(ch)!));
  return text.match(/[\p{Script=Han}\uFFFD]/gu)?.length ?? 0;
}

function mergePair(word: number[], a: number, b: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < word.length; i++) {
    if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
      out.push(merged);
      i++;
    } else {
      out.push(word[i]);
    }
  }
  return out;
}

/** A tokenizer.json `added_tokens` entry for a special token. */
export function specialTokenEntry(content: string, id: number): Record<string, unknown> {
  return {
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  };
}

/** Hugging Face `tokenizer.json` of a byte-level BPE with Qwen2's pipeline and special tokens. */
export function buildTokenizerJson(model: BpeModel): object {
  const firstSpecialId = model.vocab.size;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, i) =>
      specialTokenEntry(content, firstSpecialId + i),
    ),
    normalizer: { type: 'NFC' },
    pre_tokenizer: PRE_TOKENIZER,
    post_processor: { type: 'ByteLevel', ...BYTE_LEVEL },
    decoder: { type: 'ByteLevel', ...BYTE_LEVEL },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(model.vocab),
      // Byte-level symbols never contain a space, so the classic "a b" form is unambiguous.
      merges: model.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/**
 * `tokenizer_config.json` as Qwen2-Instruct ships it (eos `<|im_end|>`, pad `<|endoftext|>`, no
 * bos) but without a chat_template: the tiny model is trained in the tutorial's
 * "Human: …\n\nAssistant: " format, which loraforge uses for models that have no chat template.
 */
export function buildTokenizerConfig(model: BpeModel): object {
  const firstSpecialId = model.vocab.size;
  const addedTokensDecoder = Object.fromEntries(
    SPECIAL_TOKENS.map((content, i) => [
      String(firstSpecialId + i),
      {
        content,
        lstrip: false,
        normalized: false,
        rstrip: false,
        single_word: false,
        special: true,
      },
    ]),
  );
  return {
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: TINY_MODEL_MAX_LENGTH,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
}

/**
 * The text between ChatML's special tokens when a record is rendered with the chat template, so
 * the role names and the default system prompt, which the model sees in every example, get tokens.
 */
function chatMlSegments(record: CorpusRecord): string[] {
  const prompt = record.input ? `${record.instruction}\n${record.input}` : record.instruction;
  return [`system\n${TINY_MODEL_SYSTEM_PROMPT}`, `user\n${prompt}`, `assistant\n${record.output}`];
}

/** Trains on the default corpus and returns the two files' contents. */
export function trainTinyTokenizer(): {
  tokenizerJson: string;
  tokenizerConfigJson: string;
  model: BpeModel;
} {
  const wordCounts = countWords(generateCorpus().flatMap(chatMlSegments));
  const model = trainBpe(wordCounts, { vocabSize: TINY_VOCAB_SIZE - SPECIAL_TOKENS.length });
  if (model.vocab.size + SPECIAL_TOKENS.length !== TINY_VOCAB_SIZE) {
    throw new Error(
      `the corpus only supports ${model.vocab.size} BPE tokens, fewer than TINY_VOCAB_SIZE asks for`,
    );
  }
  return {
    model,
    tokenizerJson: JSON.stringify(buildTokenizerJson(model), null, 2) + '\n',
    tokenizerConfigJson: JSON.stringify(buildTokenizerConfig(model), null, 2) + '\n',
  };
}

function main(): void {
  const outDir = process.argv[2] ?? 'assets/tiny-chat';
  const { model, tokenizerJson, tokenizerConfigJson } = trainTinyTokenizer();
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'tokenizer.json'), tokenizerJson);
  writeFileSync(join(outDir, 'tokenizer_config.json'), tokenizerConfigJson);
  console.log(
    `wrote ${outDir}/tokenizer.json: ${model.vocab.size} BPE tokens (${model.merges.length} merges) + ${SPECIAL_TOKENS.length} special`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) main();
