/** Shared test setup: one CPU backend per test process, golden file access. */
import '../src/engine/cpu/node-host.ts';
import { join } from 'node:path';
import { CpuBackend } from '../src/engine/cpu/backend.ts';
import { setBackend } from '../src/engine/tensor.ts';
import { writeFileAtomic } from '../src/io/atomic.ts';
import {
  SafetensorsFile,
  bytesToF32,
  bytesToI32,
  encodeSafetensors,
} from '../src/io/safetensors.ts';

export const GOLDEN = join(import.meta.dirname, '..', '..', 'shared', 'golden');
export const TINY = join(GOLDEN, 'qwen2-tiny');

let backend: Promise<CpuBackend> | undefined;

export function useCpuBackend(threads = 2): Promise<CpuBackend> {
  backend ??= CpuBackend.create({ threads }).then((b) => {
    setBackend(b);
    return b;
  });
  return backend;
}

export interface GoldenTensor<T> {
  data: T;
  shape: readonly number[];
}

export function readGolden(path: string): {
  f32(name: string): GoldenTensor<Float32Array>;
  i32(name: string): GoldenTensor<Int32Array>;
  names(): string[];
} {
  const file = SafetensorsFile.open(path);
  return {
    f32: (name) => ({
      data: bytesToF32(file.info(name).dtype, file.read(name)),
      shape: file.info(name).shape,
    }),
    i32: (name) => ({
      data: bytesToI32(file.info(name).dtype, file.read(name)),
      shape: file.info(name).shape,
    }),
    names: () => file.names(),
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** ‖a − b‖ / ‖b‖ */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** The size of the tiny random chat models (its vocabulary is the tiny-chat tokenizer's). */
export const TINY_CHAT_SHAPE = {
  vocab_size: 2048,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  eos_token_id: 2047,
};

/**
 * A small random Qwen2 model folder using the shipped tiny-chat tokenizer (2048 tokens): fast
 * enough for end-to-end tests of training, chat and serving.
 */
export async function makeRandomChatModel(
  dir: string,
  seed = 0,
  /** Another family's config.json (its vocab_size should stay 2048, the tokenizer's). */
  config?: Record<string, unknown>,
): Promise<string> {
  const { copyFileSync } = await import('node:fs');
  const { writeRandomModel } = await import('../src/models/random.ts');
  writeRandomModel(
    dir,
    config ?? { ...TINY_CHAT_SHAPE, architectures: ['Qwen2ForCausalLM'], rope_theta: 10000 },
    { seed, std: 0.5 },
  );
  const assets = join(import.meta.dirname, '..', 'assets', 'tiny-chat');
  for (const file of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(assets, file), join(dir, file));
  return dir;
}

/** Golden packages of the families beyond qwen2 (same layout as qwen2-tiny). */
export const FAMILY_GOLDENS: { name: string; dir: string }[] = [
  { name: 'qwen3-tiny', dir: join(GOLDEN, 'qwen3-tiny') },
  // Made by this repository (scripts/golden/README.md), committed under test/fixtures/golden.
  { name: 'gemma3-tiny', dir: join(import.meta.dirname, 'fixtures', 'golden', 'gemma3-tiny') },
  { name: 'smollm3-tiny', dir: join(import.meta.dirname, 'fixtures', 'golden', 'smollm3-tiny') },
  { name: 'phi3-tiny', dir: join(import.meta.dirname, 'fixtures', 'golden', 'phi3-tiny') },
];

/** A tiny Gemma 3 text config of the tiny chat shape: one sliding and one global layer. */
export const TINY_GEMMA3_TEXT: Record<string, unknown> = {
  ...TINY_CHAT_SHAPE,
  architectures: ['Gemma3ForCausalLM'],
  model_type: 'gemma3_text',
  head_dim: 16,
  hidden_activation: 'gelu_pytorch_tanh',
  query_pre_attn_scalar: 16,
  sliding_window: 4,
  layer_types: ['sliding_attention', 'full_attention'],
};

/** A Gemma3ForConditionalGeneration config around `text` (a Gemma 3 text config). */
export function multimodalConfig(text: Record<string, unknown>): Record<string, unknown> {
  return {
    architectures: ['Gemma3ForConditionalGeneration'],
    model_type: 'gemma3',
    eos_token_id: text.eos_token_id,
    text_config: { ...text, architectures: undefined, eos_token_id: undefined },
    vision_config: { model_type: 'siglip_vision_model' },
  };
}

export const VISION_TENSOR = 'model.vision_tower.vision_model.post_layernorm.weight';

/**
 * Adds a vision-tower tensor to a model folder's weights (a multimodal checkpoint has many), and
 * with `legacy` spells the language model's names as checkpoints before transformers 4.52 did.
 */
export function makeMultimodal(dir: string, legacy: boolean): void {
  const file = SafetensorsFile.open(join(dir, 'model.safetensors'));
  const tensors = file.names().map((name) => ({
    name: legacy ? name.replace(/^model\.language_model\./, 'language_model.model.') : name,
    dtype: file.info(name).dtype,
    shape: file.info(name).shape,
    data: file.read(name),
  }));
  file.close();
  tensors.push({ name: VISION_TENSOR, dtype: 'F32', shape: [3], data: new Uint8Array(12) });
  writeFileAtomic(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
}
