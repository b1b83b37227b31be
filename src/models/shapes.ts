/** Weight shapes and counts a decoder config implies. */
import type { DecoderConfig } from './config.ts';
import type { LayerNormName, ProjectionName } from './decoder.ts';

/** [out, in] of each projection of this family, in module order (fused ones for Phi-3). */
export function projectionShapes(c: DecoderConfig): Map<ProjectionName, [number, number]> {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const h = c.hiddenSize;
  const attention: [ProjectionName, [number, number]][] = c.fusedProjections
    ? [['qkv_proj', [q + 2 * kv, h]]]
    : [
        ['q_proj', [q, h]],
        ['k_proj', [kv, h]],
        ['v_proj', [kv, h]],
      ];
  const mlp: [ProjectionName, [number, number]][] = c.fusedProjections
    ? [['gate_up_proj', [2 * c.intermediateSize, h]]]
    : [
        ['gate_proj', [c.intermediateSize, h]],
        ['up_proj', [c.intermediateSize, h]],
      ];
  return new Map([
    ...attention,
    ['o_proj', [h, q]],
    ...mlp,
    ['down_proj', [h, c.intermediateSize]],
  ]);
}

/** The norms of one layer of this family with their sizes. */
export function layerNormShapes(c: DecoderConfig): [LayerNormName, number][] {
  const norms: [LayerNormName, number][] = [
    ['input_layernorm', c.hiddenSize],
    ['post_attention_layernorm', c.hiddenSize],
  ];
  if (c.sandwichNorms) {
    norms.push(['pre_feedforward_layernorm', c.hiddenSize]);
    norms.push(['post_feedforward_layernorm', c.hiddenSize]);
  }
  if (c.qkNorm) norms.push(['self_attn.q_norm', c.headDim], ['self_attn.k_norm', c.headDim]);
  return norms;
}

export function hasBias(c: DecoderConfig, name: ProjectionName): boolean {
  if (name === 'o_proj') return c.oBias;
  if (name === 'q_proj' || name === 'k_proj' || name === 'v_proj' || name === 'qkv_proj') {
    return c.qkvBias;
  }
  return c.mlpBias;
}

/** Every base weight (a tied head counted once). */
export function baseParameterCountOf(c: DecoderConfig): number {
  let perLayer = layerNormShapes(c).reduce((sum, [, size]) => sum + size, 0);
  for (const [name, [out, inF]] of projectionShapes(c)) {
    perLayer += out * inF + (hasBias(c, name) ? out : 0);
  }
  const embed = c.vocabSize * c.hiddenSize;
  return embed * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * perLayer + c.hiddenSize;
}

/**
 * The storage dtype `auto` means: bf16 for models above 100M parameters (half the bytes, and
 * what their checkpoints ship in), f32 for small ones (exact, and cheap anyway).
 */
export function autoWeightDType(c: DecoderConfig): 'f32' | 'bf16' {
  return baseParameterCountOf(c) > 100e6 ? 'bf16' : 'f32';
}
