/**
 * Writes a Hugging Face model folder with random weights for a given shape: the stand-in for real
 * checkpoints in tests and benchmarks (e.g. a Qwen2-0.5B-shaped model), and the starting point
 * of the project's own small chat model. Initialisation follows transformers (normal, std 0.02;
 * norms at 1; biases at 0).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import {
  encodeSafetensors,
  f32ToBf16,
  f32ToF16,
  writeSafetensorsStreaming,
  type TensorLayout,
} from '../io/safetensors.ts';
import { Rng } from '../util/rng.ts';
import { parseDecoderConfig } from './config.ts';
import { projectionPath } from './decoder.ts';
import { hasBias, layerNormShapes, projectionShapes } from './shapes.ts';

/** Qwen2-0.5B-Instruct's config.json (the shape every benchmark uses). */
export const QWEN2_0_5B_CONFIG = {
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rope_theta: 1000000.0,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  bos_token_id: 151643,
  eos_token_id: 151645,
  torch_dtype: 'bfloat16',
};

/** Qwen2.5-3B's config.json shape: ~3.1B parameters, ~6.2 GB of bf16 (above wasm32's 4 GiB). */
export const QWEN2_5_3B_CONFIG = {
  ...QWEN2_0_5B_CONFIG,
  hidden_size: 2048,
  intermediate_size: 11008,
  num_hidden_layers: 36,
  num_attention_heads: 16,
  num_key_value_heads: 2,
};

/** Qwen2.5-7B's config.json shape (untied LM head, 4 key/value heads). */
export const QWEN2_5_7B_CONFIG = {
  ...QWEN2_0_5B_CONFIG,
  vocab_size: 152064,
  hidden_size: 3584,
  intermediate_size: 18944,
  num_hidden_layers: 28,
  num_attention_heads: 28,
  num_key_value_heads: 4,
  rope_theta: 1000000.0,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};

/** Qwen3-0.6B's config.json shape (q/k norms, head_dim 128 ≠ hidden / heads). */
export const QWEN3_0_6B_CONFIG = {
  architectures: ['Qwen3ForCausalLM'],
  model_type: 'qwen3',
  vocab_size: 151936,
  hidden_size: 1024,
  intermediate_size: 3072,
  num_hidden_layers: 28,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 128,
  max_position_embeddings: 40960,
  rope_theta: 1000000.0,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  hidden_act: 'silu',
  attention_bias: false,
  bos_token_id: 151643,
  eos_token_id: 151645,
  torch_dtype: 'bfloat16',
};

/** Gemma-3-1B's text config shape (262k vocabulary, 5 sliding layers of 512 : 1 global). */
export const GEMMA3_1B_CONFIG = {
  architectures: ['Gemma3ForCausalLM'],
  model_type: 'gemma3_text',
  vocab_size: 262144,
  hidden_size: 1152,
  intermediate_size: 6912,
  num_hidden_layers: 26,
  num_attention_heads: 4,
  num_key_value_heads: 1,
  head_dim: 256,
  max_position_embeddings: 32768,
  query_pre_attn_scalar: 256,
  sliding_window: 512,
  sliding_window_pattern: 6,
  rope_theta: 1000000.0,
  rope_local_base_freq: 10000.0,
  rms_norm_eps: 1e-6,
  hidden_activation: 'gelu_pytorch_tanh',
  tie_word_embeddings: true,
  bos_token_id: 2,
  eos_token_id: [1, 106],
  torch_dtype: 'bfloat16',
};

/**
 * Phi-4-mini-instruct's config.json shape (fused projections, RoPE on 3/4 of each head, LongRoPE
 * past 4096 positions, 200k vocabulary). The 48 short / long factors are placeholders of the
 * right length, not the published values: they do not change the cost of anything.
 */
export const PHI4_MINI_CONFIG = {
  architectures: ['Phi3ForCausalLM'],
  model_type: 'phi3',
  vocab_size: 200064,
  hidden_size: 3072,
  intermediate_size: 8192,
  num_hidden_layers: 32,
  num_attention_heads: 24,
  num_key_value_heads: 8,
  max_position_embeddings: 131072,
  original_max_position_embeddings: 4096,
  partial_rotary_factor: 0.75,
  rope_theta: 10000.0,
  rope_scaling: {
    type: 'longrope',
    short_factor: new Array<number>(48).fill(1),
    long_factor: new Array<number>(48).fill(1),
  },
  sliding_window: 262144,
  rms_norm_eps: 1e-5,
  hidden_act: 'silu',
  tie_word_embeddings: true,
  bos_token_id: 199999,
  eos_token_id: 199999,
  torch_dtype: 'bfloat16',
};

export type RandomDType = 'F32' | 'BF16' | 'F16';

/** Writes a model folder (config.json, model.safetensors) of random weights, built in memory. */
export function writeRandomModel(
  dir: string,
  rawConfig: Record<string, unknown>,
  opts: RandomModelOptions = {},
): void {
  // Drawn in declaration order, so a seed gives the same weights as it always has.
  const tensors = randomTensors(rawConfig, opts).map(({ make, ...t }) => ({ ...t, data: make() }));
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(rawConfig, null, 2) + '\n');
}

/**
 * writeRandomModel for models of any size: each tensor is drawn as the file reaches it (in file
 * order, so the values differ from writeRandomModel's for the same seed) and written at once, so
 * memory holds one tensor, never the file (a 3B model is ~6 GB of bf16).
 */
export async function writeRandomModelStreaming(
  dir: string,
  rawConfig: Record<string, unknown>,
  opts: RandomModelOptions = {},
): Promise<void> {
  const plans = randomTensors(rawConfig, opts).map(({ make, ...t }) => ({
    ...t,
    bytes: () => [make()],
  }));
  mkdirSync(dir, { recursive: true });
  await writeSafetensorsStreaming(join(dir, 'model.safetensors'), plans);
  writeFileAtomic(join(dir, 'config.json'), JSON.stringify(rawConfig, null, 2) + '\n');
}

export interface RandomModelOptions {
  dtype?: RandomDType;
  seed?: number;
  std?: number;
  /**
   * Draw only this many normals, once, and fill every matrix with them from a random offset,
   * wrapping: plausible weights written at the speed of copying (multi-GB benchmark models).
   */
  repeatBlock?: number;
}

/** Every weight of the model, each drawn from one shared generator when `make` is called. */
function randomTensors(
  rawConfig: Record<string, unknown>,
  opts: RandomModelOptions,
): (TensorLayout & { make(): ArrayBufferView })[] {
  const config = parseDecoderConfig(rawConfig, 'random model config');
  const dtype = opts.dtype ?? 'F32';
  const rng = new Rng(opts.seed ?? 0);
  const std = opts.std ?? 0.02;
  const tensors: (TensorLayout & { make(): ArrayBufferView })[] = [];
  const encode = (values: Float32Array): ArrayBufferView =>
    dtype === 'BF16' ? f32ToBf16(values) : dtype === 'F16' ? f32ToF16(values) : values;
  const draw = (n: number) => {
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = rng.normal(0, std);
    return values;
  };
  // Encoded once, copied as it is stored: no per-value work.
  let block: Float32Array | Uint16Array | null = null;
  const repeated = (n: number, blockSize: number) => {
    block ??= encode(draw(blockSize)) as Float32Array | Uint16Array;
    const out = block instanceof Float32Array ? new Float32Array(n) : new Uint16Array(n);
    let from = rng.int(0, blockSize - 1);
    for (let i = 0; i < n;) {
      const take = Math.min(n - i, blockSize - from);
      out.set(block.subarray(from, from + take), i);
      [i, from] = [i + take, 0];
    }
    return out;
  };
  const normal = (name: string, shape: number[]) =>
    tensors.push({
      name,
      dtype,
      shape,
      make: () => {
        const n = shape[0]! * shape[1]!;
        return opts.repeatBlock ? repeated(n, opts.repeatBlock) : encode(draw(n));
      },
    });
  const constant = (name: string, length: number, value: number) =>
    tensors.push({
      name,
      dtype,
      shape: [length],
      make: () => encode(new Float32Array(length).fill(value)),
    });

  const c = config;
  const prefix = c.modulePrefix;
  // A norm that scales by (1 + w) starts at w = 0, as transformers initialises Gemma's.
  const normInit = c.normPlusOne ? 0 : 1;
  normal(`${prefix}.embed_tokens.weight`, [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    for (const [name, size] of layerNormShapes(c)) {
      constant(`${prefix}.layers.${i}.${name}.weight`, size, normInit);
    }
    for (const [name, shape] of projectionShapes(c)) {
      const path = projectionPath(i, name, prefix);
      normal(`${path}.weight`, shape);
      if (hasBias(c, name)) constant(`${path}.bias`, shape[0], 0);
    }
  }
  constant(`${prefix}.norm.weight`, c.hiddenSize, normInit);
  if (!c.tieWordEmbeddings) normal('lm_head.weight', [c.vocabSize, c.hiddenSize]);
  return tensors;
}

/** The shapes benchmarks and scripts/make-random-model.ts build random models of, by name. */
export const RANDOM_MODEL_SHAPES: Record<string, Record<string, unknown>> = {
  'qwen2-0.5b': QWEN2_0_5B_CONFIG,
  'qwen3-0.6b': QWEN3_0_6B_CONFIG,
  'gemma3-1b': GEMMA3_1B_CONFIG,
  'phi4-mini': PHI4_MINI_CONFIG,
  'qwen2.5-3b': QWEN2_5_3B_CONFIG,
  'qwen2.5-7b': QWEN2_5_7B_CONFIG,
};
