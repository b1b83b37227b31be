/**
 * Phi-3 / Phi-3.5-mini / Phi-4-mini (Phi3ForCausalLM): the Llama decoder with q, k and v fused
 * into one qkv_proj ([q; k; v] rows) and gate and up into one gate_up_proj ([gate; up] rows), so a
 * LoRA adapter has one A/B pair per fused matrix as PEFT does, and `sliding_window` (when set)
 * on every layer, as transformers 4.57 masks it. partial_rotary_factor (Phi-4-mini: 0.75) and
 * LongRoPE (short/long factors, original_max_position_embeddings, attention factor) are shared
 * RoPE keys, read by config.ts and rope-config.ts.
 */
import { baseTraits, layerWindows, withGlobalRope, type ArchitectureFamily } from './family.ts';

export const phi3: ArchitectureFamily = {
  architectures: ['Phi3ForCausalLM'],
  defaultRopeTheta: 10000,
  traits(raw, base, source) {
    return {
      ...baseTraits(raw, base, source),
      fusedProjections: true,
      layers: withGlobalRope(layerWindows(raw, base.numLayers, source, { allSliding: true })),
    };
  },
};
