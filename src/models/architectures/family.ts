/**
 * What an architecture family is: the few ways it differs from the shared pre-norm decoder
 * (models/decoder.ts), read from its config.json. A family file holds only those differences;
 * everything a family does not mention keeps the Llama/Qwen2 default of `baseTraits`.
 */
import type { GateActivation } from '../../engine/backend.ts';
import { LoraforgeError } from '../../util/errors.ts';
import type { RopeSettings } from '../rope-config.ts';

/** Gate activation of the gated MLP: down(act(gate(x)) · up(x)). */
export type Activation = GateActivation;

/** Which RoPE table a layer rotates q and k with: the model's, the local one, or none (NoPE). */
export type LayerRope = 'global' | 'local' | 'none';

export interface LayerSpec {
  /** Sliding-window attention: a query sees itself and the window − 1 keys before it; null = all. */
  window: number | null;
  rope: LayerRope;
}

/** The config fields every family shares, parsed before the family looks at the rest. */
export interface BaseDecoderConfig {
  architecture: string;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | undefined;
  eosTokenIds: number[];
}

/** How a family's decoder differs from the shared one. */
export interface FamilyTraits {
  /** q/k/v projections carry a bias (Qwen2 always; Llama when attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama attention_bias). */
  oBias: boolean;
  mlpBias: boolean;
  /**
   * q/k/v are one qkv_proj ([q; k; v] rows) and gate/up one gate_up_proj ([gate; up] rows), each
   * with one LoRA A/B pair over its whole output (Phi-3).
   */
  fusedProjections: boolean;
  /** Per-head RMSNorm of q and k over head_dim before RoPE (self_attn.q_norm / k_norm). */
  qkNorm: boolean;
  /** Norm weights scale by (1 + w), zero-centred (Gemma). */
  normPlusOne: boolean;
  /**
   * Gemma's four norms per block: post_attention_layernorm normalises the attention output,
   * pre_feedforward_layernorm the MLP input and post_feedforward_layernorm its output.
   */
  sandwichNorms: boolean;
  /** Factor applied to the embeddings (Gemma: √hidden, rounded to the activation dtype). */
  embedScale: number;
  activation: Activation;
  /** Scale of the attention scores (1/√head_dim unless the family says otherwise). */
  attentionScale: number;
  layers: LayerSpec[];
  /** RoPE of the 'local' layers (Gemma 3's sliding layers); null when no layer uses it. */
  localRope: RopeSettings | null;
  /** Why float16 weights are refused for this family, or null when they are allowed. */
  f16Refused: string | null;
}

export interface ArchitectureFamily {
  /** `architectures[0]` values of config.json that this family reads. */
  readonly architectures: readonly string[];
  /** rope_theta when the config does not give one. */
  readonly defaultRopeTheta: number;
  /** tie_word_embeddings when the config does not say (transformers' default for the class). */
  readonly tiedByDefault?: boolean;
  traits(raw: Record<string, unknown>, base: BaseDecoderConfig, source: string): FamilyTraits;
}

/** The shared decoder (Llama / Qwen2 / Mistral without their biases): what a family starts from. */
export function baseTraits(
  raw: Record<string, unknown>,
  base: BaseDecoderConfig,
  source: string,
): FamilyTraits {
  return {
    qkvBias: false,
    oBias: false,
    mlpBias: raw.mlp_bias === true,
    fusedProjections: false,
    qkNorm: false,
    normPlusOne: false,
    sandwichNorms: false,
    embedScale: 1,
    activation: activationOf(raw, source, 'silu'),
    attentionScale: 1 / Math.sqrt(base.headDim),
    layers: withGlobalRope(layerWindows(raw, base.numLayers, source)),
    localRope: null,
    f16Refused: null,
  };
}

const ACTIVATIONS: Record<string, Activation> = {
  silu: 'silu',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_tanh: 'gelu_tanh',
};

/** `hidden_act` (or Gemma's `hidden_activation`) as one of the gates loraforge computes. */
export function activationOf(
  raw: Record<string, unknown>,
  source: string,
  fallback: Activation,
): Activation {
  const key = raw.hidden_activation !== undefined ? 'hidden_activation' : 'hidden_act';
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  const activation = ACTIVATIONS[String(value)];
  if (!activation) {
    throw new LoraforgeError(
      `${source}: ${key} ${JSON.stringify(value)} is not supported`,
      `loraforge computes ${Object.keys(ACTIVATIONS).join(', ')}`,
    );
  }
  return activation;
}

/**
 * The attention window of each layer: `layer_types` (transformers ≥ 4.53 / 5) marks layers
 * "sliding_attention" or "full_attention"; sliding layers see `sliding_window` keys. Without
 * `layer_types`, `allSliding` (Mistral: every layer slides when sliding_window is set) decides.
 */
export function layerWindows(
  raw: Record<string, unknown>,
  numLayers: number,
  source: string,
  opts: { allSliding?: boolean; window?: number | null; types?: unknown[] } = {},
): (number | null)[] {
  const window = opts.window !== undefined ? opts.window : slidingWindowOf(raw);
  const types = opts.types ?? (Array.isArray(raw.layer_types) ? raw.layer_types : null);
  if (!types) return new Array<number | null>(numLayers).fill(opts.allSliding ? window : null);
  if (types.length !== numLayers) {
    throw new LoraforgeError(
      `${source}: layer_types lists ${types.length} layers, num_hidden_layers is ${numLayers}`,
    );
  }
  return types.map((type, i) => {
    if (type === 'full_attention') return null;
    if (type === 'sliding_attention') return window;
    throw new LoraforgeError(
      `${source}: layer_types[${i}] ${JSON.stringify(type)} is not supported`,
      'loraforge runs full_attention and sliding_attention layers',
    );
  });
}

/** Layers with the given windows, all rotating with the model's RoPE. */
export function withGlobalRope(windows: (number | null)[]): LayerSpec[] {
  return windows.map((window) => ({ window, rope: 'global' }));
}

/** `sliding_window` when it is a positive number, else null. */
export function slidingWindowOf(raw: Record<string, unknown>): number | null {
  return typeof raw.sliding_window === 'number' && raw.sliding_window > 0
    ? raw.sliding_window
    : null;
}

/** Refuses a config key that loraforge does not compute when it is set (not null / false). */
export function refuseIfSet(
  raw: Record<string, unknown>,
  key: string,
  source: string,
  why: string,
): void {
  if (raw[key] != null && raw[key] !== false) {
    throw new LoraforgeError(
      `${source}: ${key} ${JSON.stringify(raw[key])} is not supported (${why})`,
    );
  }
}
