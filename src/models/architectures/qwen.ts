/**
 * Qwen2 / Qwen2.5 (q/k/v biases) and Qwen3 (no biases; per-head q_norm / k_norm before RoPE;
 * head_dim set apart from hidden / heads). Both slide their attention only when
 * `use_sliding_window` is true, and then only from layer `max_window_layers` on, unless
 * `layer_types` says otherwise.
 */
import {
  baseTraits,
  layerWindows,
  slidingWindowOf,
  withGlobalRope,
  type ArchitectureFamily,
  type BaseDecoderConfig,
} from './family.ts';

function qwenLayers(raw: Record<string, unknown>, base: BaseDecoderConfig, source: string) {
  const window = raw.use_sliding_window === true ? slidingWindowOf(raw) : null;
  const firstSliding = typeof raw.max_window_layers === 'number' ? raw.max_window_layers : 0;
  const types = Array.isArray(raw.layer_types)
    ? raw.layer_types
    : Array.from({ length: base.numLayers }, (_, i) =>
        window !== null && i >= firstSliding ? 'sliding_attention' : 'full_attention',
      );
  return withGlobalRope(layerWindows(raw, base.numLayers, source, { window, types }));
}

export const qwen2: ArchitectureFamily = {
  architectures: ['Qwen2ForCausalLM'],
  defaultRopeTheta: 10000,
  traits: (raw, base, source) => ({
    ...baseTraits(raw, base, source),
    qkvBias: true,
    layers: qwenLayers(raw, base, source),
  }),
};

export const qwen3: ArchitectureFamily = {
  architectures: ['Qwen3ForCausalLM'],
  defaultRopeTheta: 10000,
  traits: (raw, base, source) => {
    const bias = raw.attention_bias === true;
    return {
      ...baseTraits(raw, base, source),
      qkvBias: bias,
      oBias: bias,
      qkNorm: true,
      layers: qwenLayers(raw, base, source),
    };
  },
};
