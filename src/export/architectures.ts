/**
 * How each Hugging Face architecture is written for llama.cpp: its GGUF architecture name, the
 * tensor names, whether llama.cpp's RoPE for it rotates interleaved pairs (then the q/k projection
 * rows are permuted from transformers' rotate-half order, as llama.cpp's converter does), and
 * what llama.cpp's graph for it computes in each layer (attention window, RoPE table), so that a
 * config it would run differently is refused instead of exported wrong. Adding a family is one
 * entry here.
 */
import type { GgufValue } from '../io/gguf/format.ts';
import type { DecoderConfig, LayerSpec } from '../models/config.ts';
import { LoraforgeError } from '../util/errors.ts';

/** One `<arch>.<key>` metadata entry beyond the ones every architecture has. */
export type ArchitectureKey = [key: string, value: GgufValue];

export interface GgufArchitecture {
  /** `general.architecture`, and the prefix of the architecture's metadata keys. */
  name: string;
  /** llama.cpp's LLAMA_ROPE_TYPE_NORM (interleaved pairs) instead of NEOX (rotate-half). */
  interleavedRope: boolean;
  /** Layer modules this family names differently from LAYER_TENSORS. */
  layerTensors?: Record<string, string>;
  /**
   * What llama.cpp computes in layer i of `c` with this family's metadata, and the metadata
   * (window sizes, RoPE bases) that makes it so. Layers loraforge computes otherwise are refused.
   */
  layers(c: DecoderConfig): { layers: LayerSpec[]; keys: ArchitectureKey[] };
  /**
   * A setting of `c` that llama.cpp's graph cannot express, and what it lacks for it (checked
   * before export); undefined when there is none.
   */
  refuses?(c: DecoderConfig): { setting: string; missing: string } | undefined;
}

const u32 = (value: number): GgufValue => ({ type: 'u32', value });
const f32 = (value: number): GgufValue => ({ type: 'f32', value });

/** Every layer full attention with the model's RoPE: the plain llama.cpp decoder. */
function plainLayers(c: DecoderConfig): { layers: LayerSpec[]; keys: ArchitectureKey[] } {
  return { layers: c.layers.map(() => ({ window: null, rope: 'global' })), keys: [] };
}

/** llama.cpp's SmolLM3: layer i uses no RoPE when (i + 1) is a multiple of 4 (no GGUF key sets it). */
const SMOLLM3_NOPE_STEP = 4;

/** llama.cpp's qwen3 and gemma3 graphs have no attention biases (a file with them fails to load). */
function biasRefused(c: DecoderConfig): { setting: string; missing: string } | undefined {
  return c.qkvBias || c.oBias
    ? { setting: 'attention_bias true', missing: 'attention bias tensors' }
    : undefined;
}

/** Per-head q/k RMSNorm weights (Qwen3, Gemma 3): only in the families whose graph reads them. */
const QK_NORMS = { 'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm' };

const llama: GgufArchitecture = { name: 'llama', interleavedRope: true, layers: plainLayers };

/**
 * llama.cpp's phi3 graph: fused [q; k; v] and [gate; up] matrices (its SwiGLU gates with the first
 * half of ffn_up, as transformers' gate_up_proj), NEOX RoPE over rope.dimension_count values, and
 * no sliding window (it reads attention.sliding_window, then switches SWA off): every layer is
 * full attention, so a window shorter than the context is refused by the layer check. LongRoPE's
 * factor tables are tensors (gguf-model.ts); its attention factor and original context are keys.
 */
const phi3: GgufArchitecture = {
  name: 'phi3',
  interleavedRope: false,
  layerTensors: { 'self_attn.qkv_proj': 'attn_qkv', 'mlp.gate_up_proj': 'ffn_up' },
  layers: (c) => {
    const keys: ArchitectureKey[] = [];
    const window = c.layers[0]?.window;
    if (window) keys.push(['attention.sliding_window', u32(window)]);
    if (c.ropeScaling?.type === 'longrope') {
      keys.push(
        ['rope.scaling.attn_factor', f32(c.ropeScaling.attentionFactor)],
        ['rope.scaling.original_context_length', u32(c.ropeScaling.originalMaxPositionEmbeddings)],
      );
    }
    return { layers: plainLayers(c).layers, keys };
  },
  // Its query and output matrices are [hidden, hidden]: heads · head_dim must be the hidden size.
  refuses: (c) =>
    c.numHeads * c.headDim === c.hiddenSize
      ? undefined
      : {
          setting: `head_dim ${c.headDim} (× ${c.numHeads} heads ≠ hidden_size ${c.hiddenSize})`,
          missing: 'a query width other than the embedding length',
        },
};

const ARCHITECTURES: Record<string, GgufArchitecture> = {
  Qwen2ForCausalLM: { name: 'qwen2', interleavedRope: false, layers: plainLayers },
  Qwen3ForCausalLM: {
    name: 'qwen3',
    interleavedRope: false,
    layerTensors: QK_NORMS,
    layers: plainLayers,
    refuses: biasRefused,
  },
  LlamaForCausalLM: llama,
  // llama.cpp reads Mistral (dense) and Ministral checkpoints as its llama architecture.
  MistralForCausalLM: llama,
  MinistralForCausalLM: llama,
  Phi3ForCausalLM: phi3,
  SmolLM3ForCausalLM: {
    name: 'smollm3',
    interleavedRope: true,
    layers: (c) => ({
      layers: c.layers.map((_, i) => ({
        window: null,
        rope: (i + 1) % SMOLLM3_NOPE_STEP === 0 ? 'none' : 'global',
      })),
      keys: [],
    }),
  },
  Gemma3ForCausalLM: {
    name: 'gemma3',
    interleavedRope: false,
    layerTensors: {
      ...QK_NORMS,
      post_attention_layernorm: 'post_attention_norm',
      pre_feedforward_layernorm: 'ffn_norm',
      post_feedforward_layernorm: 'post_ffw_norm',
    },
    // Sliding layers rotate with rope.freq_base_swa, the others with rope.freq_base (and its
    // scaling); sliding_window_pattern marks the sliding layers (else llama.cpp slides 5 in 6).
    layers: (c) => {
      const window = c.layers.find((l) => l.window !== null)?.window ?? 0;
      return {
        layers: c.layers.map((l) =>
          l.window === null ? { window: null, rope: 'global' } : { window, rope: 'local' },
        ),
        keys: [
          ['attention.sliding_window', u32(window)],
          [
            'attention.sliding_window_pattern',
            { type: 'array', itemType: 'bool', values: c.layers.map((l) => l.window !== null) },
          ],
          ['rope.freq_base_swa', f32(c.localRope?.theta ?? 10000)],
        ],
      };
    },
    refuses: (c) => {
      const bias = biasRefused(c);
      if (bias) return bias;
      // llama.cpp scales Gemma 3's queries by head_dim^-½, or (hidden / heads)^-½ for the 27B
      // model (62 layers), which is what query_pre_attn_scalar says for every released size.
      const scalar = c.numLayers === 62 ? c.hiddenSize / c.numHeads : c.headDim;
      if (Math.abs(c.attentionScale * Math.sqrt(scalar) - 1) > 1e-6) {
        const given = Number((1 / c.attentionScale ** 2).toPrecision(6));
        return {
          setting: `query_pre_attn_scalar ${given}`,
          missing: `a key for the query scale; it uses ${scalar}`,
        };
      }
      // llama.cpp's sliding layers rotate unscaled (rope_freq_scale_train_swa is 1).
      if (c.localRope?.scaling) {
        return { setting: 'RoPE scaling on the sliding layers', missing: 'a key for it' };
      }
      return undefined;
    },
  },
};

/** The llama.cpp architecture of `config`; throws naming what GGUF cannot express. */
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

/**
 * RoPE scalings that llama.cpp reads as per-frequency factor tensors, and the one architecture
 * whose graph reads them (others ignore the tensors and would rotate unscaled).
 */
const ROPE_FACTOR_TENSORS: Record<string, { arch: string; tensors: string }> = {
  llama3: { arch: 'llama', tensors: 'rope_freqs' },
  longrope: { arch: 'phi3', tensors: 'rope_factors_long / rope_factors_short' },
};

function describeLayer(l: LayerSpec): string {
  const attention = l.window === null ? 'full attention' : `a ${l.window}-key sliding window`;
  const rope = { global: 'RoPE', local: 'local RoPE', none: 'no RoPE' }[l.rope];
  return `${attention}, ${rope}`;
}

/**
 * The `<arch>.*` keys that make llama.cpp compute every layer as loraforge does; throws for a
 * layer (window, RoPE) or setting that llama.cpp's graph for the architecture cannot express.
 */
export function architectureKeys(
  arch: GgufArchitecture,
  c: DecoderConfig,
  where: string,
): ArchitectureKey[] {
  const refused = arch.refuses?.(c);
  if (refused) {
    throw new LoraforgeError(
      `${where}: ${c.architecture} with ${refused.setting} cannot be exported (missing: ${refused.missing} in llama.cpp's ${arch.name})`,
    );
  }
  const factors = c.ropeScaling && ROPE_FACTOR_TENSORS[c.ropeScaling.type];
  if (factors && factors.arch !== arch.name) {
    throw new LoraforgeError(
      `${where}: ${c.ropeScaling!.type} RoPE scaling on ${c.architecture} cannot be exported (missing: ${factors.tensors} in llama.cpp's ${arch.name})`,
    );
  }
  const { layers, keys } = arch.layers(c);
  // A window as long as the context is full attention (Ministral-8B's 32768, for one).
  const window = (w: number | null) => (w !== null && w < c.maxPositionEmbeddings ? w : null);
  c.layers.forEach((ours, i) => {
    const theirs = layers[i]!;
    if (window(ours.window) !== window(theirs.window) || ours.rope !== theirs.rope) {
      throw new LoraforgeError(
        `${where}: layer ${i} has ${describeLayer(ours)}; llama.cpp's ${arch.name} computes ${describeLayer(theirs)} there (missing: a GGUF key for this layer in llama.cpp's ${arch.name})`,
      );
    }
  });
  return keys;
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

/** Modules outside the layers, under the decoder's prefix (`model` or `model.language_model`). */
const GLOBAL_TENSORS: Record<string, string> = {
  embed_tokens: 'token_embd',
  norm: 'output_norm',
};

/**
 * llama.cpp's name of a Hugging Face module path (`model.layers.3.mlp.down_proj` → `blk.3.ffn_down`;
 * `prefix` is the config's module prefix), or undefined for a module it has no tensor for.
 */
export function ggufModuleName(
  arch: GgufArchitecture,
  prefix: string,
  modulePath: string,
): string | undefined {
  if (modulePath === 'lm_head') return 'output';
  if (!modulePath.startsWith(`${prefix}.`)) return undefined;
  const inner = modulePath.slice(prefix.length + 1);
  if (GLOBAL_TENSORS[inner]) return GLOBAL_TENSORS[inner];
  const m = /^layers\.(\d+)\.(.+)$/.exec(inner);
  const name = m && (arch.layerTensors?.[m[2]!] ?? LAYER_TENSORS[m[2]!]);
  return name ? `blk.${m[1]}.${name}` : undefined;
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
