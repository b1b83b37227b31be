/**
 * config.json → the decoder description loraforge runs. Qwen2 (also Qwen2.5), Llama and Mistral
 * share one pre-norm decoder; they differ only in biases, defaults and names of config keys.
 */
import { LoraforgeError } from '../util/errors.ts';
import { SUPPORTED_ROPE_SCALING, type RopeScaling } from './rope-frequencies.ts';

/** A model's config.json, parsed and checked (architecture, sizes, RoPE, norms). */
export interface DecoderConfig {
  architecture: string;
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  ropeTheta: number;
  /** rope_scaling of the config; null for the default (unscaled) RoPE. */
  ropeScaling: RopeScaling | null;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2 always; Llama when attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama attention_bias). */
  oBias: boolean;
  mlpBias: boolean;
  bosTokenId: number | undefined;
  eosTokenIds: number[];
}

interface ArchitectureDefaults {
  qkvBias: (raw: Record<string, unknown>) => boolean;
  oBias: (raw: Record<string, unknown>) => boolean;
  ropeTheta: number;
}

const ARCHITECTURES: Record<string, ArchitectureDefaults> = {
  Qwen2ForCausalLM: { qkvBias: () => true, oBias: () => false, ropeTheta: 10000 },
  LlamaForCausalLM: {
    qkvBias: (raw) => raw.attention_bias === true,
    oBias: (raw) => raw.attention_bias === true,
    ropeTheta: 10000,
  },
  MistralForCausalLM: { qkvBias: () => false, oBias: () => false, ropeTheta: 10000 },
};

export const SUPPORTED_ARCHITECTURES = Object.keys(ARCHITECTURES);

function int(raw: Record<string, unknown>, key: string, source: string, fallback?: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new LoraforgeError(
      `${source}: "${key}" must be a positive integer (got ${JSON.stringify(raw[key])})`,
    );
  }
  return value;
}

function idList(value: unknown): number[] {
  if (typeof value === 'number') return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === 'number');
  return [];
}

/** `source` names the file in error messages. */
export function parseDecoderConfig(
  raw: Record<string, unknown>,
  source = 'config.json',
): DecoderConfig {
  const architecture = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : undefined;
  const defaults = architecture ? ARCHITECTURES[architecture] : undefined;
  if (!architecture || !defaults) {
    throw new LoraforgeError(
      `${source}: unsupported architecture ${JSON.stringify(architecture ?? raw.model_type ?? null)}`,
      `loraforge runs ${SUPPORTED_ARCHITECTURES.join(', ')}`,
    );
  }
  const rope = parseRope(raw, source);
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'silu') {
    throw new LoraforgeError(
      `${source}: hidden_act ${JSON.stringify(raw.hidden_act)} is not supported (only silu)`,
    );
  }
  const hiddenSize = int(raw, 'hidden_size', source);
  const numHeads = int(raw, 'num_attention_heads', source);
  const numKvHeads = int(raw, 'num_key_value_heads', source, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new LoraforgeError(
      `${source}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
    );
  }
  const headDim = int(raw, 'head_dim', source, hiddenSize / numHeads);
  if (headDim % 2 !== 0) {
    throw new LoraforgeError(`${source}: head_dim ${headDim} is odd (RoPE rotates pairs)`);
  }
  return {
    architecture,
    modelType: String(raw.model_type ?? ''),
    vocabSize: int(raw, 'vocab_size', source),
    hiddenSize,
    intermediateSize: int(raw, 'intermediate_size', source),
    numLayers: int(raw, 'num_hidden_layers', source),
    numHeads,
    numKvHeads,
    headDim,
    ropeTheta: rope.theta ?? defaults.ropeTheta,
    ropeScaling: rope.scaling,
    rmsNormEps: typeof raw.rms_norm_eps === 'number' ? raw.rms_norm_eps : 1e-6,
    maxPositionEmbeddings: int(raw, 'max_position_embeddings', source, 32768),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    qkvBias: defaults.qkvBias(raw),
    oBias: defaults.oBias(raw),
    mlpBias: raw.mlp_bias === true,
    bosTokenId: typeof raw.bos_token_id === 'number' ? raw.bos_token_id : undefined,
    eosTokenIds: idList(raw.eos_token_id),
  };
}

/**
 * RoPE settings: `rope_theta` and `rope_scaling` (transformers 4), or both inside
 * `rope_parameters` (transformers 5). The type is `rope_type`, or `type` in older configs; a
 * missing type means "default".
 */
function parseRope(
  raw: Record<string, unknown>,
  source: string,
): { theta: number | undefined; scaling: RopeScaling | null } {
  const key = raw.rope_parameters != null ? 'rope_parameters' : 'rope_scaling';
  const params = raw[key];
  let theta = typeof raw.rope_theta === 'number' ? raw.rope_theta : undefined;
  if (params == null) return { theta, scaling: null };
  if (typeof params !== 'object' || Array.isArray(params)) {
    throw new LoraforgeError(`${source}: "${key}" must be an object or null`);
  }
  const p = params as Record<string, unknown>;
  if (typeof p.rope_theta === 'number') theta = p.rope_theta;
  if (p.rope_type !== undefined && p.type !== undefined && p.rope_type !== p.type) {
    throw new LoraforgeError(
      `${source}: ${key} gives two types, rope_type ${JSON.stringify(p.rope_type)} and type ${JSON.stringify(p.type)}`,
    );
  }
  const type = p.rope_type ?? p.type ?? 'default';
  const positive = (name: string): number => {
    const value = p[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new LoraforgeError(
        `${source}: ${key} type ${JSON.stringify(type)} needs "${name}" as a positive number (got ${JSON.stringify(value)})`,
      );
    }
    return value;
  };
  if (type === 'default') return { theta, scaling: null };
  if (type === 'linear') return { theta, scaling: { type, factor: positive('factor') } };
  if (type === 'llama3') {
    const scaling: RopeScaling = {
      type,
      factor: positive('factor'),
      lowFreqFactor: positive('low_freq_factor'),
      highFreqFactor: positive('high_freq_factor'),
      originalMaxPositionEmbeddings: positive('original_max_position_embeddings'),
    };
    if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
      throw new LoraforgeError(
        `${source}: ${key} type "llama3" needs high_freq_factor (${scaling.highFreqFactor}) above low_freq_factor (${scaling.lowFreqFactor})`,
      );
    }
    return { theta, scaling };
  }
  throw new LoraforgeError(
    `${source}: RoPE scaling type ${JSON.stringify(type)} (${key}) is not supported`,
    `loraforge supports RoPE scaling types default, ${SUPPORTED_ROPE_SCALING.join(' and ')}`,
  );
}
