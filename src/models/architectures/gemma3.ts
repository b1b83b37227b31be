/**
 * Gemma 3 text (270M, 1B; the language model of the 4B+ multimodal checkpoints): zero-centred
 * RMSNorm x̂·(1 + w), four norms per block, embeddings × √hidden, GELU-tanh gate, q/k norms,
 * scores scaled by query_pre_attn_scalar^-½, and sliding-window layers (5 local : 1 global by
 * default) that rotate with their own RoPE base (`rope_local_base_freq`, unscaled) beside the
 * global one (`rope_theta` and its scaling).
 */
import { LoraforgeError } from '../../util/errors.ts';
import { isObject, parseRopeParams, type RopeSettings } from '../rope-config.ts';
import {
  activationOf,
  baseTraits,
  layerWindows,
  refuseIfSet,
  type ArchitectureFamily,
} from './family.ts';

/** Gemma 3's default `sliding_window_pattern`: every 6th layer is global. */
const SLIDING_WINDOW_PATTERN = 6;

export const gemma3: ArchitectureFamily = {
  architectures: ['Gemma3ForCausalLM'],
  defaultRopeTheta: 1_000_000,
  tiedByDefault: true,
  traits(raw, base, source) {
    refuseIfSet(raw, 'final_logit_softcapping', source, 'Gemma 2 style logit soft-capping');
    // attn_logit_softcapping is read but not applied by transformers' Gemma3Attention (4.57): so
    // it is ignored here too, and the logits stay those of transformers.
    refuseIfSet(
      raw,
      'use_bidirectional_attention',
      source,
      'bidirectional attention (EmbeddingGemma)',
    );
    const pattern =
      typeof raw.sliding_window_pattern === 'number'
        ? raw.sliding_window_pattern
        : SLIDING_WINDOW_PATTERN;
    const types = Array.isArray(raw.layer_types)
      ? raw.layer_types
      : Array.from({ length: base.numLayers }, (_, i) =>
          (i + 1) % pattern !== 0 ? 'sliding_attention' : 'full_attention',
        );
    const windows = layerWindows(raw, base.numLayers, source, { types });
    const scalar = raw.query_pre_attn_scalar ?? base.headDim;
    if (typeof scalar !== 'number' || !(scalar > 0)) {
      throw new LoraforgeError(
        `${source}: query_pre_attn_scalar must be a positive number (got ${JSON.stringify(scalar)})`,
      );
    }
    return {
      ...baseTraits(raw, base, source),
      qkvBias: raw.attention_bias === true,
      oBias: raw.attention_bias === true,
      qkNorm: true,
      normPlusOne: true,
      sandwichNorms: true,
      // transformers multiplies by a float32 tensor holding √hidden.
      embedScale: Math.fround(Math.sqrt(base.hiddenSize)),
      activation: activationOf(raw, source, 'gelu_tanh'),
      attentionScale: scalar ** -0.5,
      layers: windows.map((window, i) => ({
        window,
        rope: types[i] === 'sliding_attention' ? 'local' : 'global',
      })),
      localRope: localRope(raw, source),
      // loraforge's activations and accumulations are float32 whatever the weights' dtype, but
      // Gemma is known to overflow float16 (its checkpoints are bf16) and f16 weights have not
      // been checked against a reference for it.
      f16Refused:
        'Gemma overflows float16 (its checkpoints are bfloat16); f16 weights are not validated for it',
    };
  },
};

/**
 * The sliding layers' RoPE: `rope_local_base_freq` with no scaling (transformers 4), or
 * `rope_parameters.sliding_attention` (transformers 5).
 */
function localRope(raw: Record<string, unknown>, source: string): RopeSettings {
  const base = typeof raw.rope_local_base_freq === 'number' ? raw.rope_local_base_freq : 10000;
  const params = raw.rope_parameters;
  if (isObject(params) && isObject(params.sliding_attention)) {
    const key = 'rope_parameters.sliding_attention';
    const rope = parseRopeParams(params.sliding_attention, key, base, source);
    return { theta: rope.theta ?? base, scaling: rope.scaling };
  }
  return { theta: base, scaling: null };
}
