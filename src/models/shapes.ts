/** Weight shapes a decoder config implies. */
import type { DecoderConfig } from './config.ts';
import type { ProjectionName } from './decoder.ts';

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

export function hasBias(c: DecoderConfig, name: ProjectionName): boolean {
  if (name === 'o_proj') return c.oBias;
  if (name === 'q_proj' || name === 'k_proj' || name === 'v_proj') return c.qkvBias;
  return c.mlpBias;
}

