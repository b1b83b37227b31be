/**
 * Which ggml type each tensor gets for an export type. Vectors (norms, biases) stay F32.
 * f16 / bf16 / q8_0 store every matrix in that type, as llama.cpp's converter does (--outtype).
 * q4_k_m follows llama.cpp's quantizer rules for Q4_K_M (llama-quant.cpp): Q4_K by default; Q6_K
 * for the output matrix (the token embedding when the model has none), and for attn_v and
 * ffn_down in the layers where `use_more_bits` holds (the first and last eighth and every third
 * layer between). A row length that is not a multiple of 256 cannot hold K-quant blocks: like
 * llama.cpp, Q4_K falls back to Q5_0 and Q6_K to Q8_0, and a row that cannot hold 32-value
 * blocks either stays F16.
 */
import { GGML_TYPES, type GgmlType, type GgmlTypeName } from '../io/gguf/ggml-types.ts';

/** Weight types of an export: floats, llama.cpp's Q8_0, and its Q4_K_M mix. */
export const EXPORT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_k_m'] as const;
/** One of {@link EXPORT_TYPES}. */
export type ExportType = (typeof EXPORT_TYPES)[number];

/** llama.cpp's `general.file_type` (enum llama_ftype) of each export type. */
export const FILE_TYPE: Record<ExportType, number> = {
  f32: 0,
  f16: 1,
  q8_0: 7,
  q4_k_m: 15,
  bf16: 32,
};

const K_QUANT_FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = {
  Q4_K: 'Q5_0',
  Q6_K: 'Q8_0',
};

function useMoreBits(layer: number, layers: number): boolean {
  return (
    layer < layers / 8 || layer >= (7 * layers) / 8 || (layer - Math.floor(layers / 8)) % 3 === 2
  );
}

function q4kmChoice(ggufName: string, layers: number, hasOutput: boolean): GgmlTypeName {
  if (ggufName === 'output.weight' || (!hasOutput && ggufName === 'token_embd.weight')) {
    return 'Q6_K';
  }
  // llama.cpp gives a fused q/k/v matrix (Phi-3) Q5_K; without a Q5_K encoder here, the next
  // K type up keeps at least its precision.
  if (/^blk\.\d+\.attn_qkv\.weight$/.test(ggufName)) return 'Q6_K';
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(ggufName);
  if (m && useMoreBits(Number(m[1]), layers)) return 'Q6_K';
  return 'Q4_K';
}

export interface TensorTypeContext {
  layers: number;
  /** The model has its own output matrix (untied embeddings). */
  hasOutput: boolean;
}

export function tensorType(
  exportType: ExportType,
  ggufName: string,
  shape: readonly number[],
  ctx: TensorTypeContext,
): GgmlType {
  if (shape.length < 2 || exportType === 'f32') return GGML_TYPES.F32;
  if (exportType === 'f16') return GGML_TYPES.F16;
  if (exportType === 'bf16') return GGML_TYPES.BF16;
  let name: GgmlTypeName =
    exportType === 'q8_0' ? 'Q8_0' : q4kmChoice(ggufName, ctx.layers, ctx.hasOutput);
  const rowLength = shape[shape.length - 1]!;
  if (rowLength % GGML_TYPES[name].blockSize !== 0) name = K_QUANT_FALLBACK[name] ?? name;
  if (rowLength % GGML_TYPES[name].blockSize !== 0) name = 'F16';
  return GGML_TYPES[name];
}
