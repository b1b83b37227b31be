/**
 * How each Hugging Face architecture is written for llama.cpp: its GGUF architecture name, the
 * tensor names, and whether llama.cpp's RoPE for it rotates interleaved pairs (then the q/k
 * projection rows are permuted from transformers' rotate-half order, as llama.cpp's converter
 * does). Adding a family is one entry here (plus its tensors, if they differ).
 */
import type { DecoderConfig } from '../models/config.ts';
import { LoraforgeError } from '../util/errors.ts';

export interface GgufArchitecture {
  /** `general.architecture`, and the prefix of the architecture's metadata keys. */
  name: string;
  /** llama.cpp's LLAMA_ROPE_TYPE_NORM (interleaved pairs) instead of NEOX (rotate-half). */
  interleavedRope: boolean;
}

const ARCHITECTURES: Record<string, GgufArchitecture> = {
  Qwen2ForCausalLM: { name: 'qwen2', interleavedRope: false },
  LlamaForCausalLM: { name: 'llama', interleavedRope: true },
  // llama.cpp reads Mistral (dense) checkpoints as its llama architecture.
  MistralForCausalLM: { name: 'llama', interleavedRope: true },
};

export function ggufArchitecture(
  config: Pick<DecoderConfig, 'architecture'>,
  where: string,
): GgufArchitecture {
  const arch = ARCHITECTURES[config.architecture];
  if (!arch) {
    throw new LoraforgeError(
      `${where}: no GGUF mapping for architecture ${config.architecture} (missing: its llama.cpp architecture name and tensor names)`,
      `loraforge exports ${Object.keys(ARCHITECTURES).join(', ')}`,
    );
  }
  return arch;
}

/** Hugging Face projection / norm names inside a layer → llama.cpp's. */
const LAYER_TENSORS: Record<string, string> = {
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

const GLOBAL_TENSORS: Record<string, string> = {
  'model.embed_tokens': 'token_embd',
  'model.norm': 'output_norm',
  lm_head: 'output',
};

/**
 * llama.cpp's name of a Hugging Face module path (`model.layers.3.mlp.down_proj` → `blk.3.ffn_down`),
 * or undefined for a module it has no tensor for.
 */
export function ggufModuleName(modulePath: string): string | undefined {
  if (GLOBAL_TENSORS[modulePath]) return GLOBAL_TENSORS[modulePath];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(modulePath);
  const inner = m && LAYER_TENSORS[m[2]!];
  return inner ? `blk.${m[1]}.${inner}` : undefined;
}

/** `blk.N.attn_q` / `blk.N.attn_k`: the projections whose rows RoPE rotates. */
export function ropeRotatedRows(ggufModule: string): 'q' | 'k' | undefined {
  if (ggufModule.endsWith('.attn_q')) return 'q';
  if (ggufModule.endsWith('.attn_k')) return 'k';
  return undefined;
}

/**
 * Reorders the rows of a q or k projection (weight [heads·D, in], bias [heads·D]) from
 * transformers' rotate-half layout (pair j = rows j and j + D/2 of a head) to interleaved pairs
 * (rows 2j and 2j + 1), which is what llama.cpp's non-NEOX RoPE rotates.
 */
export function interleaveRopeRows(
  values: Float32Array,
  heads: number,
  rowLength: number,
): Float32Array {
  const rows = values.length / rowLength;
  const headDim = rows / heads;
  const half = headDim / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let side = 0; side < 2; side++) {
        const from = h * headDim + side * half + j;
        const to = h * headDim + 2 * j + side;
        out.set(values.subarray(from * rowLength, (from + 1) * rowLength), to * rowLength);
      }
    }
  }
  return out;
}
