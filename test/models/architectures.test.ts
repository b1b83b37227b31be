/** The architecture registry: what each family's config.json turns into (models/architectures/). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SafetensorsBuffer } from '../../src/io/safetensors-buffer.ts';
import { encodeSafetensors } from '../../src/io/safetensors.ts';
import { SUPPORTED_ARCHITECTURES, parseDecoderConfig } from '../../src/models/config.ts';
import { modelFromTensors } from '../../src/models/from-tensors.ts';
import { GEMMA3_1B_CONFIG, PHI4_MINI_CONFIG, QWEN3_0_6B_CONFIG } from '../../src/models/random.ts';
import { baseParameterCountOf, projectionShapes } from '../../src/models/shapes.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { useCpuBackend } from '../helpers.ts';

const SMALL = {
  vocab_size: 100,
  hidden_size: 16,
  intermediate_size: 32,
  num_hidden_layers: 6,
  num_attention_heads: 2,
  num_key_value_heads: 1,
};

test('Qwen3-0.6B: q/k norms, head_dim apart from hidden / heads, no biases, tied head', () => {
  const c = parseDecoderConfig(QWEN3_0_6B_CONFIG);
  assert.equal(c.headDim, 128);
  assert.equal(c.hiddenSize / c.numHeads, 64);
  assert.equal(c.qkNorm, true);
  assert.equal(c.qkvBias, false);
  assert.equal(c.tieWordEmbeddings, true);
  assert.equal(c.attentionScale, 1 / Math.sqrt(128));
  assert.ok(c.layers.every((l) => l.window === null && l.rope === 'global'));
});

test('Qwen sliding windows only with use_sliding_window, from max_window_layers on', () => {
  const raw = { ...SMALL, architectures: ['Qwen2ForCausalLM'], sliding_window: 4096 };
  assert.ok(parseDecoderConfig(raw).layers.every((l) => l.window === null));
  const sliding = parseDecoderConfig({ ...raw, use_sliding_window: true, max_window_layers: 4 });
  assert.deepEqual(
    sliding.layers.map((l) => l.window),
    [null, null, null, null, 4096, 4096],
  );
});

test('Gemma-3-1B: 5 local : 1 global, local RoPE base, query_pre_attn_scalar, √hidden', () => {
  const c = parseDecoderConfig(GEMMA3_1B_CONFIG);
  assert.deepEqual(
    c.layers.slice(0, 6).map((l) => [l.window, l.rope]),
    [...Array(5).fill([512, 'local']), [null, 'global']],
  );
  assert.deepEqual(c.localRope, { theta: 10000, scaling: null });
  assert.equal(c.ropeTheta, 1e6);
  assert.equal(c.attentionScale, 1 / 16);
  assert.equal(c.embedScale, Math.fround(Math.sqrt(1152)));
  assert.equal(c.activation, 'gelu_tanh');
  assert.equal(c.normPlusOne, true);
  assert.equal(c.sandwichNorms, true);
  assert.equal(c.tieWordEmbeddings, true, "Gemma ties by default, as transformers' class does");
});

test('transformers 5 rope_parameters: one entry per layer type for Gemma 3', () => {
  const { rope_theta: _, rope_local_base_freq: __, ...raw } = GEMMA3_1B_CONFIG;
  const c = parseDecoderConfig({
    ...raw,
    rope_parameters: {
      full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 },
      sliding_attention: { rope_type: 'default', rope_theta: 10000 },
    },
  });
  assert.deepEqual(c.ropeScaling, { type: 'linear', factor: 8 });
  assert.equal(c.ropeTheta, 1e6);
  assert.deepEqual(c.localRope, { theta: 10000, scaling: null });
});

test('Gemma 2 style final logit soft-capping is refused by name', () => {
  assert.throws(
    () => parseDecoderConfig({ ...GEMMA3_1B_CONFIG, final_logit_softcapping: 30 }),
    (err: unknown) =>
      err instanceof LoraforgeError && /final_logit_softcapping 30/.test(err.message),
  );
});

test('Mistral slides every layer; Ministral follows layer_types; unknown layer types refused', () => {
  const mistral = parseDecoderConfig({
    ...SMALL,
    architectures: ['MistralForCausalLM'],
    sliding_window: 8,
  });
  assert.ok(mistral.layers.every((l) => l.window === 8));
  const types = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'];
  const ministral = parseDecoderConfig({
    ...SMALL,
    num_hidden_layers: 4,
    architectures: ['MinistralForCausalLM'],
    sliding_window: 8,
    layer_types: types,
  });
  assert.deepEqual(
    ministral.layers.map((l) => l.window),
    [8, null, 8, null],
  );
  assert.throws(
    () =>
      parseDecoderConfig({
        ...SMALL,
        num_hidden_layers: 1,
        architectures: ['MinistralForCausalLM'],
        layer_types: ['linear_attention'],
      }),
    /layer_types\[0\] "linear_attention" is not supported/,
  );
});

test('SmolLM3: NoPE every 4th layer by default, or as no_rope_layers says', () => {
  const c = parseDecoderConfig({
    ...SMALL,
    num_hidden_layers: 8,
    architectures: ['SmolLM3ForCausalLM'],
  });
  assert.deepEqual(
    c.layers.map((l) => l.rope),
    ['global', 'global', 'global', 'none', 'global', 'global', 'global', 'none'],
  );
  assert.equal(c.ropeTheta, 2e6);
});

test('a *ForConditionalGeneration config is read as its text model under model.language_model', () => {
  const c = parseDecoderConfig({
    architectures: ['Gemma3ForConditionalGeneration'],
    model_type: 'gemma3',
    eos_token_id: [1, 106],
    text_config: { ...SMALL, model_type: 'gemma3_text', head_dim: 8 },
    vision_config: { model_type: 'siglip_vision_model', hidden_size: 1152 },
  });
  assert.equal(c.architecture, 'Gemma3ForCausalLM');
  assert.equal(c.modulePrefix, 'model.language_model');
  assert.deepEqual(c.eosTokenIds, [1, 106]);
  assert.equal(c.hiddenSize, 16);
});

test('Phi-4-mini: fused projections, 3/4 of each head rotated, LongRoPE, window everywhere', () => {
  const c = parseDecoderConfig(PHI4_MINI_CONFIG);
  assert.equal(c.fusedProjections, true);
  assert.equal(c.rotaryDim, 96);
  assert.deepEqual(
    [...projectionShapes(c)],
    [
      ['qkv_proj', [(24 + 2 * 8) * 128, 3072]],
      ['o_proj', [3072, 3072]],
      ['gate_up_proj', [2 * 8192, 3072]],
      ['down_proj', [3072, 8192]],
    ],
  );
  assert.ok(c.layers.every((l) => l.window === 262144 && l.rope === 'global'));
  assert.equal(c.tieWordEmbeddings, true);
  // 3.84B parameters, as the model card says.
  assert.equal(Math.round(baseParameterCountOf(c) / 1e7), 384);
  assert.ok(c.ropeScaling?.type === 'longrope');
  assert.equal(c.ropeScaling.originalMaxPositionEmbeddings, 4096);
  const wrongLength = { ...PHI4_MINI_CONFIG.rope_scaling, short_factor: [1, 1] };
  assert.throws(
    () => parseDecoderConfig({ ...PHI4_MINI_CONFIG, rope_scaling: wrongLength }),
    /short_factor has 2 entries, the rotated head part needs 48/,
  );
  assert.throws(
    () => parseDecoderConfig({ ...PHI4_MINI_CONFIG, partial_rotary_factor: 0.7 }),
    /89 is odd/,
  );
});

test('Phi-4-mini in transformers 5 form: LongRoPE and partial rotary inside rope_parameters', () => {
  const {
    rope_scaling,
    original_max_position_embeddings,
    partial_rotary_factor,
    rope_theta,
    ...rest
  } = PHI4_MINI_CONFIG;
  const v5 = parseDecoderConfig({
    ...rest,
    rope_parameters: {
      rope_type: 'longrope',
      short_factor: rope_scaling.short_factor,
      long_factor: rope_scaling.long_factor,
      original_max_position_embeddings,
      partial_rotary_factor,
      rope_theta,
    },
  });
  const v4 = parseDecoderConfig(PHI4_MINI_CONFIG);
  assert.equal(v5.rotaryDim, 96);
  // transformers 5: factor (absent) = max / original, as transformers 4 derives it.
  assert.deepEqual(v5.ropeScaling, v4.ropeScaling);
  assert.equal(v5.ropeTheta, v4.ropeTheta);
});

test('an unknown architecture is one line naming every supported one', () => {
  for (const architectures of [['PhiMoEForCausalLM'], ['Qwen3_5ForConditionalGeneration']]) {
    assert.throws(
      () => parseDecoderConfig({ ...SMALL, architectures }),
      (err: unknown) =>
        err instanceof LoraforgeError &&
        !err.message.includes('\n') &&
        SUPPORTED_ARCHITECTURES.every((name) => err.message.includes(name)),
    );
  }
});

test('float16 weights are refused for Gemma with a hint', async () => {
  await useCpuBackend();
  const c = parseDecoderConfig({ ...SMALL, architectures: ['Gemma3ForCausalLM'], head_dim: 8 });
  const empty = new SafetensorsBuffer(Buffer.concat(encodeSafetensors([])), 'memory');
  assert.throws(
    () => modelFromTensors(c, empty, 'memory', { dtype: 'f16' }),
    (err: unknown) =>
      err instanceof LoraforgeError &&
      /dtype f16 is refused for Gemma3ForCausalLM/.test(err.message),
  );
});
