/**
 * SmolLM3: Llama with NoPE layers. `no_rope_layers[i]` is 1 where layer i rotates q/k and 0 where
 * it uses no position encoding; without the list, every `no_rope_layer_interval`-th layer (4 by
 * default) is NoPE. Sliding windows only with `use_sliding_window`, on the layers `layer_types`
 * marks sliding.
 */
import { LoraforgeError } from '../../util/errors.ts';
import { baseTraits, layerWindows, slidingWindowOf, type ArchitectureFamily } from './family.ts';

export const smollm3: ArchitectureFamily = {
  architectures: ['SmolLM3ForCausalLM'],
  defaultRopeTheta: 2_000_000,
  traits(raw, base, source) {
    const interval =
      typeof raw.no_rope_layer_interval === 'number' ? raw.no_rope_layer_interval : 4;
    const useRope = Array.isArray(raw.no_rope_layers)
      ? raw.no_rope_layers
      : Array.from({ length: base.numLayers }, (_, i) => ((i + 1) % interval !== 0 ? 1 : 0));
    if (useRope.length !== base.numLayers || useRope.some((v) => v !== 0 && v !== 1)) {
      throw new LoraforgeError(
        `${source}: no_rope_layers must list 0 or 1 for each of the ${base.numLayers} layers (got ${JSON.stringify(raw.no_rope_layers)})`,
      );
    }
    const window = raw.use_sliding_window === true ? slidingWindowOf(raw) : null;
    const windows = layerWindows(raw, base.numLayers, source, { window });
    const bias = raw.attention_bias === true;
    return {
      ...baseTraits(raw, base, source),
      qkvBias: bias,
      oBias: bias,
      layers: windows.map((w, i) => ({ window: w, rope: useRope[i] ? 'global' : 'none' })),
    };
  },
};
