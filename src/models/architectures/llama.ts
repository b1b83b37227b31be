/**
 * Llama (1–3.x), Mistral and Ministral: the shared decoder itself. Llama's `attention_bias` puts
 * biases on q/k/v/o; Mistral slides every layer's attention when `sliding_window` is set;
 * Ministral marks sliding layers with `layer_types`.
 */
import { baseTraits, layerWindows, withGlobalRope, type ArchitectureFamily } from './family.ts';

export const llama: ArchitectureFamily = {
  architectures: ['LlamaForCausalLM'],
  defaultRopeTheta: 10000,
  traits(raw, base, source) {
    const bias = raw.attention_bias === true;
    return { ...baseTraits(raw, base, source), qkvBias: bias, oBias: bias };
  },
};

export const mistral: ArchitectureFamily = {
  architectures: ['MistralForCausalLM', 'MinistralForCausalLM'],
  defaultRopeTheta: 10000,
  traits(raw, base, source) {
    // Without layer_types both slide every layer when sliding_window is set; transformers' Mistral
    // also ignores layer_types (it warns and points to Ministral), so only Ministral reads them.
    const mistral = base.architecture === 'MistralForCausalLM';
    const windows = layerWindows(
      mistral ? { ...raw, layer_types: undefined } : raw,
      base.numLayers,
      source,
      { allSliding: true },
    );
    return { ...baseTraits(raw, base, source), layers: withGlobalRope(windows) };
  },
};
