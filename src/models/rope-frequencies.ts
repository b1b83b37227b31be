/**
 * RoPE inverse frequencies: the table inv_freq[j] (j < headDim/2) that pair j of every head is
 * rotated by, angle = position · inv_freq[j]. Computed once per model on the host, in float32
 * exactly as Hugging Face transformers computes it (each tensor operation rounded to float32, in
 * the same order), so kernels only read it. Scaling types follow transformers' rope utils:
 *   default: inv_freq[j] = 1 / theta^(2j/D)
 *   linear:  inv_freq[j] / factor (the same as dividing positions by factor)
 *   llama3:  Llama 3.1's wavelength-dependent scaling: frequencies whose wavelength exceeds
 *            original_max_position_embeddings / low_freq_factor are divided by factor, those
 *            below original_max_position_embeddings / high_freq_factor are kept, and the ones in
 *            between blend the two with a weight linear in original_max / wavelength.
 *   longrope: (Phi-3.5 / Phi-4-mini) inv_freq[j] = 1 / (ext[j] · theta^(2j/D)) with ext the
 *            short_factor list, or the long_factor list for a forward pass whose largest position
 *            + 1 exceeds original_max_position_embeddings (transformers switches per call); cos and
 *            sin are multiplied by the attention factor.
 * D is the rotated part of a head (head_dim · partial_rotary_factor).
 */

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      type: 'longrope';
      shortFactor: number[];
      longFactor: number[];
      /** Calls whose largest position + 1 exceeds this use the long factors. */
      originalMaxPositionEmbeddings: number;
      /** Multiplies cos and sin: √(1 + ln(s) / ln(original max)) unless the config gives it. */
      attentionFactor: number;
    };

/** The rope_scaling types loraforge computes (besides "default", which means none). */
export const SUPPORTED_ROPE_SCALING = ['linear', 'llama3', 'longrope'] as const;

const f32 = Math.fround;

/** theta^(2j/D) in float32 (the exponent and the power each rounded), j < D/2. */
function basePowers(dim: number, theta: number): Float32Array {
  return Float32Array.from({ length: dim / 2 }, (_, j) => Math.pow(f32(theta), f32((2 * j) / dim)));
}

/** Unscaled inv_freq: 1 / theta^(2j/D) in float32 (the exponent, power and quotient each rounded). */
export function defaultInverseFrequencies(dim: number, theta: number): Float32Array {
  return basePowers(dim, theta).map((p) => 1 / p);
}

/** The tables a model rotates with: which one a forward pass uses, and the cos/sin scale. */
export interface RopeTables {
  /** inv_freq [D/2] (LongRoPE: the short factors'). */
  invFreq: Float32Array;
  /** LongRoPE's long-factor table, for calls whose largest position + 1 exceeds `longAfter`. */
  long: { invFreq: Float32Array; after: number } | null;
  /** Multiplies cos and sin (LongRoPE's attention factor; 1 otherwise). */
  scale: number;
}

/** The table for a forward pass whose largest position is `maxPosition` (as transformers picks it). */
export function tableFor(tables: RopeTables, maxPosition: number): Float32Array {
  return tables.long && maxPosition + 1 > tables.long.after ? tables.long.invFreq : tables.invFreq;
}

/** The RoPE tables of a model whose heads turn their first `dim` values. */
export function ropeTables(dim: number, theta: number, scaling: RopeScaling | null): RopeTables {
  if (scaling?.type !== 'longrope') {
    return { invFreq: ropeInverseFrequencies(dim, theta, scaling), long: null, scale: 1 };
  }
  // 1 / (ext · theta^(2j/D)): float32 product, then float32 quotient.
  const powers = basePowers(dim, theta);
  const withFactors = (ext: number[]) => powers.map((p, j) => 1 / f32(f32(ext[j]!) * p));
  return {
    invFreq: withFactors(scaling.shortFactor),
    long: {
      invFreq: withFactors(scaling.longFactor),
      after: scaling.originalMaxPositionEmbeddings,
    },
    scale: scaling.attentionFactor,
  };
}

/** inv_freq of a model: the default table, then the config's rope_scaling applied. */
export function ropeInverseFrequencies(
  dim: number,
  theta: number,
  scaling: RopeScaling | null,
): Float32Array {
  const invFreq = defaultInverseFrequencies(dim, theta);
  if (!scaling) return invFreq;
  if (scaling.type === 'longrope') return ropeTables(dim, theta, scaling).invFreq;
  // transformers mixes Python floats into float32 tensor arithmetic: they act as float32.
  const factor = f32(scaling.factor);
  if (scaling.type === 'linear') return invFreq.map((v) => v / factor);

  const { lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: oldContext } = scaling;
  const lowFreqWavelen = f32(oldContext / lowFreqFactor);
  const highFreqWavelen = f32(oldContext / highFreqFactor);
  const twoPi = f32(2 * Math.PI);
  const low = f32(lowFreqFactor);
  const span = f32(highFreqFactor - lowFreqFactor);
  const context = f32(oldContext);
  return invFreq.map((v) => {
    // `2π / inv_freq` on a tensor is reciprocal(inv_freq) · 2π in torch; likewise old / wavelen.
    const wavelen = f32(f32(1 / v) * twoPi);
    if (wavelen < highFreqWavelen) return v;
    if (wavelen > lowFreqWavelen) return v / factor;
    const smooth = f32(f32(f32(f32(1 / wavelen) * context) - low) / span);
    return f32(f32(f32(1 - smooth) * v) / factor) + f32(smooth * v);
  });
}
