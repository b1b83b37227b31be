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
 */

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

/** The rope_scaling types loraforge computes (besides "default", which means none). */
export const SUPPORTED_ROPE_SCALING = ['linear', 'llama3'] as const;

const f32 = Math.fround;

/** Unscaled inv_freq: 1 / theta^(2j/D) in float32 (the exponent, power and quotient each rounded). */
export function defaultInverseFrequencies(headDim: number, theta: number): Float32Array {
  const out = new Float32Array(headDim / 2);
  for (let j = 0; j < out.length; j++) {
    out[j] = 1 / f32(Math.pow(f32(theta), f32((2 * j) / headDim)));
  }
  return out;
}

/** inv_freq of a model: the default table, then the config's rope_scaling applied. */
export function ropeInverseFrequencies(
  headDim: number,
  theta: number,
  scaling: RopeScaling | null,
): Float32Array {
  const invFreq = defaultInverseFrequencies(headDim, theta);
  if (!scaling) return invFreq;
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
