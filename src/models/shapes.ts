/** Weight shapes and counts a decoder config implies. */
import type { DecoderConfig } from './config.ts';
import { PROJECTION_NAMES, type LayerNormName, type ProjectionName } from './decoder.ts';

/** [out, in] of each projection. */
export function projectionShapes(c: DecoderConfig): Record<ProjectionName, [number, number]> {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return {
    q_proj: [q, c.hiddenSize],
    k_proj: [kv, c.hiddenSize],
    v_proj: [kv, c.hiddenSize],
    o_proj: [c.hiddenSize, q],
    gate_proj: [c.intermediateSize, c.hiddenSize],
    up_proj: [c.intermediateSize, c.hiddenSize],
    down_proj: [c.hiddenSize, c.intermediateSize],
  };
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
  if (name === 'q_proj' || name === 'k_proj' || name === 'v_proj') return c.qkvBias;
  return c.mlpBias;
}

/** Every base weight (a tied head counted once). */
export function baseParameterCountOf(c: DecoderConfig): number {
  const shapes = projectionShapes(c);
  let perLayer = layerNormShapes(c).reduce((sum, [, size]) => sum + size, 0);
  for (const name of PROJECTION_NAMES) {
    const [out, inF] = shapes[name];
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
