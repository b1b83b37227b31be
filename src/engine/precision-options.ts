/**
 * bf16 mixed precision, declared once with Hugging Face's name and meaning (`bf16=True`: bf16
 * weights, bf16 matrix products summed in float32): part of `loraforge train`'s option table, and
 * meant for the commands that load a model (chat, generate, serve) in the same words. Each bf16
 * product carries the rounding of both factors to 8 significant bits (relative error up to
 * ~2^-8, sums in float32), which is why it is a choice and not the default.
 */
import { option, type OptionValues } from '../util/options.ts';
import type { GemmPrecision } from './native/runtime.ts';

export const PRECISION_OPTIONS = {
  bf16: option.boolean(
    'bf16 mixed precision (HF bf16): frozen weights stored as bf16 when dtype is auto, and multiplied in bf16 with float32 sums where the CPU has bf16 dot products (native backend, AVX-512 BF16); exact float32 products elsewhere',
    false,
  ),
};

export type PrecisionValues = OptionValues<typeof PRECISION_OPTIONS>;

/** The GEMM precision (selectBackend's `gemmPrecision`) a set of option values asks for. */
export function gemmPrecisionOf(values: PrecisionValues): GemmPrecision {
  return values.bf16 ? 'bf16' : 'exact';
}
