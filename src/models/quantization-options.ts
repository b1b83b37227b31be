/**
 * The quantization options, declared once (Hugging Face's BitsAndBytesConfig names): part of
 * `loraforge train`'s option table, and the `--quantization` flags of the commands that load a
 * model (chat, generate, eval, serve) are made from the same declarations.
 */
import { QUANT_TYPES } from '../engine/quant/formats.ts';
import { flagName, option, type OptionValues } from '../util/options.ts';
import type { Quantization } from './quantized-load.ts';

export const QUANTIZATION_OPTIONS = {
  quantization: option.choice(
    "quantize the decoder layers' linear projections while loading (QLoRA's frozen base; a bitsandbytes 4-bit checkpoint is read as stored)",
    ['none', ...QUANT_TYPES],
    'none',
  ),
  bnb_4bit_use_double_quant: option.boolean(
    'quantize the 4-bit absmax values too (bitsandbytes double quantization, ~0.4 bit per weight saved)',
    false,
  ),
  bnb_4bit_compute_dtype: option.choice(
    'dtype quantized weights are dequantized to for the matrix products (loraforge computes in float32 on every backend)',
    ['float32'],
    'float32',
  ),
};

export type QuantizationValues = OptionValues<typeof QUANTIZATION_OPTIONS>;

/** The Quantization a set of option values asks for (null: none). */
export function quantizationFromOptions(values: QuantizationValues): Quantization | null {
  if (values.quantization === 'none') return null;
  return { type: values.quantization, doubleQuant: values.bnb_4bit_use_double_quant };
}

/**
 * The command-line flags that load a base as these values quantized it (empty for none), for the
 * commands a run suggests next: an adapter is used on the base it was trained with.
 */
export function quantizationFlags(values: QuantizationValues): string {
  if (values.quantization === 'none') return '';
  const flags = [`${flagName('quantization')} ${values.quantization}`];
  if (values.bnb_4bit_use_double_quant) flags.push(flagName('bnb_4bit_use_double_quant'));
  return ' ' + flags.join(' ');
}
