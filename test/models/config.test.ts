/** config.json parsing: RoPE scaling types and head_dim. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDecoderConfig } from '../../src/models/config.ts';
import { projectionShapes } from '../../src/models/shapes.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

/** meta-llama/Llama-3.2-1B's config.json. */
const LLAMA_3_2_1B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.45.0.dev0',
  use_cache: true,
  vocab_size: 128256,
};

const withRope = (rope: Record<string, unknown>) => ({ ...LLAMA_3_2_1B, ...rope });

/** Asserts a LoraforgeError whose message matches every pattern. */
function assertRefused(raw: Record<string, unknown>, ...patterns: RegExp[]): LoraforgeError {
  let caught: unknown;
  try {
    parseDecoderConfig(raw);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof LoraforgeError, `expected a LoraforgeError, got ${String(caught)}`);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

test('Llama 3.2 config: llama3 rope scaling, rope_theta and head_dim', () => {
  const c = parseDecoderConfig(LLAMA_3_2_1B);
  assert.equal(c.ropeTheta, 500000);
  assert.equal(c.headDim, 64);
  assert.deepEqual(c.ropeScaling, {
    type: 'llama3',
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
});

test('linear scaling under rope_type or the legacy type key', () => {
  for (const rope_scaling of [
    { rope_type: 'linear', factor: 2.0 },
    { type: 'linear', factor: 2.0 },
    { type: 'linear', rope_type: 'linear', factor: 2.0 },
  ]) {
    assert.deepEqual(parseDecoderConfig(withRope({ rope_scaling })).ropeScaling, {
      type: 'linear',
      factor: 2,
    });
  }
  const legacyLlama3 = { ...LLAMA_3_2_1B.rope_scaling, rope_type: undefined, type: 'llama3' };
  assert.equal(
    parseDecoderConfig(withRope({ rope_scaling: legacyLlama3 })).ropeScaling?.type,
    'llama3',
  );
});

test('no rope_scaling, null, or type "default" is the unscaled RoPE', () => {
  const { rope_scaling: _, ...without } = LLAMA_3_2_1B;
  for (const raw of [
    without,
    withRope({ rope_scaling: null }),
    withRope({ rope_scaling: { rope_type: 'default' } }),
    withRope({ rope_scaling: { type: 'default' } }),
    withRope({ rope_scaling: {} }), // transformers' default when neither key is present
  ]) {
    const c = parseDecoderConfig(raw);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.ropeTheta, 500000);
  }
  const qwen = parseDecoderConfig({ ...without, architectures: ['Qwen2ForCausalLM'] });
  assert.equal(qwen.ropeScaling, null);
});

test('transformers 5 rope_parameters carries rope_theta and the scaling', () => {
  const { rope_scaling, rope_theta: _, ...rest } = LLAMA_3_2_1B;
  const c = parseDecoderConfig({
    ...rest,
    rope_parameters: { ...rope_scaling, rope_theta: 500000.0 },
  });
  assert.equal(c.ropeTheta, 500000);
  assert.equal(c.ropeScaling?.type, 'llama3');
  const plain = parseDecoderConfig({
    ...rest,
    rope_parameters: { rope_type: 'default', rope_theta: 1234.0 },
  });
  assert.equal(plain.ropeTheta, 1234);
  assert.equal(plain.ropeScaling, null);
});

test('other scaling types are refused, naming the type and the supported ones', () => {
  for (const type of ['dynamic', 'yarn', 'ntk']) {
    for (const key of ['rope_type', 'type']) {
      const err = assertRefused(
        withRope({ rope_scaling: { [key]: type, factor: 4.0 } }),
        new RegExp(`"${type}"`),
        /not supported/,
      );
      assert.match(err.hint ?? '', /default, linear, llama3, longrope/);
    }
  }
  assertRefused(
    withRope({ rope_parameters: { rope_type: 'yarn', factor: 4.0, rope_theta: 1e6 } }),
    /"yarn"/,
    /rope_parameters/,
  );
});

test('incomplete or contradictory rope_scaling is refused with the key at fault', () => {
  assertRefused(
    withRope({ rope_scaling: { type: 'longrope', long_factor: [1] } }),
    /"short_factor"/,
  );
  assertRefused(withRope({ rope_scaling: { rope_type: 'linear' } }), /"factor"/);
  assertRefused(withRope({ rope_scaling: { rope_type: 'linear', factor: 0 } }), /"factor"/);
  const { low_freq_factor: _, ...noLow } = LLAMA_3_2_1B.rope_scaling;
  assertRefused(withRope({ rope_scaling: noLow }), /"low_freq_factor"/, /llama3/);
  assertRefused(
    withRope({ rope_scaling: { ...LLAMA_3_2_1B.rope_scaling, high_freq_factor: 1.0 } }),
    /high_freq_factor/,
  );
  assertRefused(
    withRope({ rope_scaling: { rope_type: 'linear', type: 'dynamic', factor: 2.0 } }),
    /"linear"/,
    /"dynamic"/,
  );
  assertRefused(withRope({ rope_scaling: 'llama3' }), /rope_scaling/);
});

test('an explicit head_dim other than hidden_size / num_attention_heads sets the shapes', () => {
  const c = parseDecoderConfig({ ...LLAMA_3_2_1B, head_dim: 128 });
  assert.equal(c.headDim, 128);
  const shapes = projectionShapes(c);
  assert.deepEqual(shapes.get('q_proj'), [32 * 128, 2048]);
  assert.deepEqual(shapes.get('k_proj'), [8 * 128, 2048]);
  assert.deepEqual(shapes.get('o_proj'), [2048, 32 * 128]);
  assert.equal(parseDecoderConfig({ ...LLAMA_3_2_1B, head_dim: null }).headDim, 64);
  assertRefused({ ...LLAMA_3_2_1B, head_dim: 63 }, /head_dim 63/);
});
