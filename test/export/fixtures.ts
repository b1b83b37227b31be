/** Shared inputs of the export tests: the tiny chat model, the demo's identity adapter, prompts. */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../../src/engine/tape.ts';
import { Tensor, tidy } from '../../src/engine/tensor.ts';
import type { ChatPipeline } from '../../src/infer/pipeline.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { Rng } from '../../src/util/rng.ts';
import { specialTokenEntry } from '../../scripts/tiny-model/train-tokenizer.ts';
import type { LlamaGguf } from './llama-cpp.ts';

export const ROOT = join(import.meta.dirname, '..', '..');
export const TINY_CHAT = join(ROOT, 'assets', 'tiny-chat');
/**
 * The adapter `loraforge demo` trains (examples/identity.yaml: 8 epochs, seed 42) on the tiny
 * chat model, kept as a fixture so the export tests need no training run.
 */
export const IDENTITY_ADAPTER = join(ROOT, 'test', 'fixtures', 'gguf', 'identity-adapter');

const EVAL = JSON.parse(readFileSync(join(ROOT, 'examples', 'identity-eval.json'), 'utf8')) as {
  identity: { question: string }[];
  general: { question: string }[];
};
/** The 20 held-out identity questions. */
export const IDENTITY_QUESTIONS = EVAL.identity.map((q) => q.question);
/** 10 identity and 10 general questions. */
export const MIXED_QUESTIONS = [
  ...IDENTITY_QUESTIONS.slice(0, 10),
  ...EVAL.general.slice(0, 10).map((q) => q.question),
];

/** Varied texts for tokenizer agreement: English, Chinese, digits, spaces, emoji, code, marks. */
export const TOKENIZER_TEXTS = [
  'Hello, world!',
  'Human: Who are you?\n\nAssistant: ',
  '你好，世界！我是小李。',
  '请告诉我你的名字。',
  'The year 2024 had 366 days; 1234567890.',
  '3.14159 + 2.71828 = 5.85987',
  '   leading and trailing spaces   ',
  'tabs\tand\nnewlines\n\n\nthree',
  'emoji 🙂🚀 and flags 🇨🇳',
  "It's, we're, they'll, I'd, you've",
  'CamelCaseWords and snake_case_names',
  'mixed 中文 and English 混合 text',
  '日本語のテキストとカタカナ',
  'Ünïcödé àccents çà et là',
  'def f(x):\n    return x ** 2  # square',
  '{"key": [1, 2, 3], "ok": true}',
  'multiple    spaces     between',
  '!!!???...,,,;;;',
  '小张开发的AI助手，版本2.0。',
  'a',
];

/** Runs the loraforge CLI; throws with its stderr on failure. */
export function loraforge(args: string[]): {
  stdout: string;
  stderr: string;
  status: number | null;
} {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'loraforge.js'), ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** GPT-2's byte → printable character table (byte-level BPE token strings). */
function byteChars(): string[] {
  const chars: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(printable ? b : 256 + extra++));
  }
  return chars;
}

/**
 * A byte-level BPE tokenizer with the 256 byte tokens, no merges, Qwen2's pre-tokenizer and an
 * end-of-text token at `eosId`: enough for llama.cpp to load a model that has no tokenizer of
 * its own (the golden and random test models).
 */
export function byteTokenizerFiles(eosId: number): Record<string, unknown> {
  const vocab = Object.fromEntries(byteChars().map((c, i) => [c, i]));
  const byteLevel = {
    type: 'ByteLevel',
    add_prefix_space: false,
    trim_offsets: false,
    use_regex: false,
  };
  return {
    'tokenizer.json': {
      version: '1.0',
      added_tokens: [specialTokenEntry('<|endoftext|>', eosId)],
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          {
            type: 'Split',
            pattern: {
              Regex:
                "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
            },
            behavior: 'Isolated',
            invert: false,
          },
          byteLevel,
        ],
      },
      post_processor: byteLevel,
      decoder: byteLevel,
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: [],
      },
    },
    'tokenizer_config.json': {
      eos_token: '<|endoftext|>',
      bos_token: null,
      tokenizer_class: 'Qwen2Tokenizer',
    },
  };
}

/** A small Llama 3-style config: GQA, Llama 3 RoPE scaling, untied output matrix. */
export const RANDOM_LLAMA = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 320,
  hidden_size: 64,
  intermediate_size: 96,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 256,
  rope_theta: 500000,
  rope_scaling: {
    rope_type: 'llama3',
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 32,
  },
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  torch_dtype: 'float32',
};

/** Writes byteTokenizerFiles into a model folder. */
export function addByteTokenizer(modelDir: string, eosId: number): void {
  for (const [name, json] of Object.entries(byteTokenizerFiles(eosId))) {
    writeFileSync(join(modelDir, name), JSON.stringify(json));
  }
}

/** Byte ids of "Hello, 你好!\n2024". */
export const PROBE_TOKENS = [
  72, 101, 108, 108, 111, 44, 32, 228, 189, 160, 229, 165, 189, 33, 10, 50, 48, 50, 52,
];

/** loraforge's logits for one sequence, [tokens · vocab] row-major. */
export function loraforgeLogits(model: DecoderModel, tokens: number[]): Float32Array {
  return noGrad(() =>
    tidy(() => {
      const input = { batch: 1, seq: tokens.length, inputIds: Int32Array.from(tokens) };
      return model.logits(model.forwardHidden(input)).readSync() as Float32Array;
    }),
  );
}

/** Largest |difference| between llama.cpp's rows and loraforge's row-major logits. */
export function maxLogitDiff(rows: Float32Array[], ours: Float32Array): number {
  let diff = 0;
  rows.forEach((row, t) => {
    for (let v = 0; v < row.length; v++) {
      diff = Math.max(diff, Math.abs(row[v]! - ours[t * row.length + v]!));
    }
  });
  return diff;
}

/**
 * A LoRA adapter on every linear layer of `model` with a random B (PEFT starts B at zero), so
 * that every projection's update, and its row order, counts.
 */
export function randomLoraAdapter(
  model: DecoderModel,
  opts: { r: number; loraAlpha: number; useRslora?: boolean; seed: number },
): LoraAdapter {
  const config = makeLoraConfig({
    r: opts.r,
    loraAlpha: opts.loraAlpha,
    useRslora: opts.useRslora ?? false,
    targetModules: 'all-linear',
  });
  const adapter = LoraAdapter.create(model, config, opts.seed);
  const rng = new Rng(opts.seed + 1);
  for (const pair of adapter.modules.values()) {
    const b = new Float32Array(pair.b.size).map(() => rng.normal(0, 0.3));
    const shape = pair.b.shape;
    pair.b.dispose();
    pair.b = Tensor.from(b, shape).keep();
  }
  return adapter;
}

/** tiktoken's o200k_base split regex, as Phi-4-mini's tokenizer.json (a tiktoken conversion) has it. */
const O200K_SPLIT =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Writes the tiny-chat tokenizer into `modelDir` with merges that only o200k's pieces can use
 * (digit runs) and one only Qwen2's can (inside a camel-case word), splitting as o200k
 * (Phi-4-mini) or, for comparison, as Qwen2: a reader splitting the other way tokenizes some
 * texts differently. The model's vocab_size must leave room for ids 2048 and up.
 */
export function writeO200kProbeTokenizer(modelDir: string, split: 'o200k' | 'qwen2'): void {
  const json = JSON.parse(
    readFileSync(join(ROOT, 'assets', 'tiny-chat', 'tokenizer.json'), 'utf8'),
  );
  if (split === 'o200k') json.pre_tokenizer.pretokenizers[0].pattern.Regex = O200K_SPLIT;
  let id = 2048;
  for (const [a, b] of [
    ['1', '2'],
    ['12', '3'],
    ['2', '0'],
    ['20', '2'],
    ['l', 'C'],
  ]) {
    json.model.vocab[a + b] = id++;
    json.model.merges.push(`${a} ${b}`);
  }
  writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify(json));
}

/**
 * A small SentencePiece-style BPE tokenizer (as transformers converts Gemma's and Llama 2's):
 * spaces become "▁" in the normalizer (`spacePrefix`: a "▁" is also put before the text, Llama 2
 * style), 256 `<0xXX>` byte pieces for characters the vocabulary lacks, pieces learnt by a few
 * hundred BPE steps on English text, and merges listed as transformers' SentencePiece converter
 * lists them: every split of every piece into two pieces, in piece order.
 */
export function sentencePieceTokenizerFiles(spacePrefix: boolean): Record<string, unknown> {
  const SPACE = '\u2581';
  const specials = ['<pad>', '<eos>', '<bos>', '<unk>'];
  const bytes = Array.from(
    { length: 256 },
    (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`,
  );
  const corpus = [...IDENTITY_QUESTIONS, ...MIXED_QUESTIONS, ...TOKENIZER_TEXTS]
    .join(' ')
    .replace(/[^\x20-\x7e]/g, '');
  const words = corpus.split(/ +/).map((w) => [...`${SPACE}${w}`]);
  const pieces = [...new Set(words.flat())];
  for (let step = 0; step < 300; step++) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) {
        const pair = `${w[i]}\u0000${w[i + 1]}`;
        counts.set(pair, (counts.get(pair) ?? 0) + 1);
      }
    }
    const best = [...counts].reduce((a, b) => (b[1] > a[1] ? b : a), ['', 0] as [string, number]);
    if (best[1] < 2) break;
    const [l, r] = best[0].split('\u0000') as [string, string];
    pieces.push(l + r);
    for (const w of words) {
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === l && w[i + 1] === r) w.splice(i, 2, l + r);
      }
    }
  }
  const vocabList = [...specials, ...bytes, ...pieces];
  const vocab = Object.fromEntries(vocabList.map((p, i) => [p, i]));
  const merges = pieces.flatMap((p) =>
    [...p]
      .map((_, i) => [p.slice(0, i), p.slice(i)] as const)
      .filter(([l, r]) => l && r && l in vocab && r in vocab)
      .sort((a, b) => vocab[a[0]]! - vocab[b[0]]! || vocab[a[1]]! - vocab[b[1]]!)
      .map(([l, r]) => `${l} ${r}`),
  );
  const replace = { type: 'Replace', pattern: { String: ' ' }, content: SPACE };
  return {
    'tokenizer.json': {
      version: '1.0',
      added_tokens: specials.map((content, id) => specialTokenEntry(content, id)),
      normalizer: spacePrefix
        ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE }, replace] }
        : replace,
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
        ],
      },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: '<unk>',
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: true,
        byte_fallback: true,
        vocab,
        merges,
      },
    },
    'tokenizer_config.json': {
      bos_token: '<bos>',
      eos_token: '<eos>',
      pad_token: '<pad>',
      unk_token: '<unk>',
      add_bos_token: false,
      tokenizer_class: 'GemmaTokenizer',
    },
  };
}

/** How many of `questions` llama.cpp answers with exactly the pipeline's greedy reply tokens. */
export async function sameGreedyReplies(
  pipeline: ChatPipeline,
  gguf: LlamaGguf,
  questions: string[],
  maxNewTokens: number,
): Promise<number> {
  let same = 0;
  for (const q of questions) {
    const messages = [{ role: 'user' as const, content: q }];
    const ours = (await pipeline.chat(messages, { maxNewTokens })).tokenIds;
    const prompt = pipeline.template.encodePrompt(messages);
    const theirs = await gguf.greedy(prompt, maxNewTokens, pipeline.template.stopTokenIds);
    if (theirs.join() === ours.join()) same++;
  }
  return same;
}
