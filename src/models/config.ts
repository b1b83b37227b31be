/**
 * config.json → the decoder description loraforge runs. The keys every family shares are read
 * here; what a family changes (biases, norms, activation, attention windows, RoPE per layer) comes
 * from its file under architectures/. A multimodal `*ForConditionalGeneration` config is read as
 * its text model (`text_config`), whose weights live under `model.language_model.*`.
 */
import { LoraforgeError } from '../util/errors.ts';
import type { BaseDecoderConfig, FamilyTraits } from './architectures/family.ts';
import {
  SUPPORTED_ARCHITECTURES,
  TEXT_MODEL_ARCHITECTURES,
  familyOf,
} from './architectures/registry.ts';
import { isObject, parseRope, type RopeSettings } from './rope-config.ts';
import type { RopeScaling } from './rope-frequencies.ts';

export { SUPPORTED_ARCHITECTURES } from './architectures/registry.ts';
export type { Activation, LayerSpec } from './architectures/family.ts';

/** A model's config.json, parsed and checked (architecture, sizes, RoPE, norms, family traits). */
export interface DecoderConfig extends BaseDecoderConfig, FamilyTraits {
  ropeTheta: number;
  /** rope_scaling of the config; null for the default (unscaled) RoPE. */
  ropeScaling: RopeScaling | null;
  /**
   * How many values of each q/k head RoPE turns: head_dim · partial_rotary_factor (Phi-4-mini
   * 0.75); the rest pass through unrotated.
   */
  rotaryDim: number;
  /**
   * Module path of the decoder stack (embed_tokens, layers, norm): `model`, or
   * `model.language_model` for the text model of a multimodal checkpoint. PEFT keys follow it.
   */
  modulePrefix: string;
}

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

/**
 * The text model's config and module prefix: the config itself, or for a multimodal
 * `*ForConditionalGeneration` its `text_config` (over the top-level keys, so that token ids and
 * tie_word_embeddings given only at the top still count) named by its causal-LM class.
 */
function textModel(raw: Record<string, unknown>): {
  raw: Record<string, unknown>;
  modulePrefix: string;
} {
  const architecture = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : '';
  const text = raw.text_config;
  if (!architecture.endsWith('ForConditionalGeneration') || !isObject(text)) {
    return { raw, modulePrefix: 'model' };
  }
  const causal = TEXT_MODEL_ARCHITECTURES[String(text.model_type)];
  const { text_config: _, vision_config: __, ...top } = raw;
  return {
    raw: {
      ...top,
      ...text,
      architectures: [causal ?? `${architecture} (text model ${JSON.stringify(text.model_type)})`],
    },
    modulePrefix: 'model.language_model',
  };
}

/** `source` names the file in error messages. */
export function parseDecoderConfig(
  rawConfig: Record<string, unknown>,
  source = 'config.json',
): DecoderConfig {
  const { raw, modulePrefix } = textModel(rawConfig);
  const architecture = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : undefined;
  const family = architecture ? familyOf(architecture) : undefined;
  if (!architecture || !family) {
    throw new LoraforgeError(
      `${source}: unsupported architecture ${JSON.stringify(architecture ?? raw.model_type ?? null)}; ` +
        `loraforge runs ${SUPPORTED_ARCHITECTURES.join(', ')} (and their *ForConditionalGeneration text models)`,
    );
  }
  const maxPositionEmbeddings = int(raw, 'max_position_embeddings', source, 32768);
  const rope: RopeSettings = parseRope(raw, source, {
    maxPositionEmbeddings,
    originalMaxPositionEmbeddings:
      typeof raw.original_max_position_embeddings === 'number'
        ? raw.original_max_position_embeddings
        : undefined,
  });
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
  const base: BaseDecoderConfig = {
    architecture,
    modelType: String(raw.model_type ?? ''),
    vocabSize: int(raw, 'vocab_size', source),
    hiddenSize,
    intermediateSize: int(raw, 'intermediate_size', source),
    numLayers: int(raw, 'num_hidden_layers', source),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: typeof raw.rms_norm_eps === 'number' ? raw.rms_norm_eps : 1e-6,
    maxPositionEmbeddings,
    tieWordEmbeddings:
      typeof raw.tie_word_embeddings === 'boolean'
        ? raw.tie_word_embeddings
        : (family.tiedByDefault ?? false),
    bosTokenId: typeof raw.bos_token_id === 'number' ? raw.bos_token_id : undefined,
    eosTokenIds: idList(raw.eos_token_id),
  };
  return checkRanges(raw, source, {
    ...base,
    ...family.traits(raw, base, source),
    ropeTheta: rope.theta ?? family.defaultRopeTheta,
    ropeScaling: rope.scaling,
    rotaryDim: rotaryDimOf(raw, headDim, rope.scaling, source),
    modulePrefix,
  });
}

interface ValidRange {
  field: keyof DecoderConfig;
  key: string;
  /** Inclusive lower bound; 0 means "greater than 0". */
  min: number;
  max: number;
}

/**
 * Far wider than any real model, far narrower than what loads and then answers "!!!!" (a
 * negative rms_norm_eps or rope_theta) or exhausts memory before saying why.
 */
const VALID_RANGES: ValidRange[] = [
  { field: 'rmsNormEps', key: 'rms_norm_eps', min: 0, max: 1 },
  { field: 'ropeTheta', key: 'rope_theta', min: 0, max: 1e12 },
  { field: 'vocabSize', key: 'vocab_size', min: 1, max: 10_000_000 },
  { field: 'hiddenSize', key: 'hidden_size', min: 1, max: 65536 },
  { field: 'intermediateSize', key: 'intermediate_size', min: 1, max: 1 << 20 },
  { field: 'numLayers', key: 'num_hidden_layers', min: 1, max: 1000 },
  { field: 'numHeads', key: 'num_attention_heads', min: 1, max: 1024 },
  { field: 'headDim', key: 'head_dim', min: 1, max: 4096 },
  { field: 'maxPositionEmbeddings', key: 'max_position_embeddings', min: 1, max: 1 << 24 },
];

/** The real-valued fields must be > 0; the counts >= 1 (int() has checked they are integers). */
function checkRanges(
  raw: Record<string, unknown>,
  source: string,
  config: DecoderConfig,
): DecoderConfig {
  if (raw.rms_norm_eps !== undefined && typeof raw.rms_norm_eps !== 'number')
    throw new LoraforgeError(`${source}: "rms_norm_eps" must be a number`);
  for (const { field, key, min, max } of VALID_RANGES) {
    const value = config[field] as number;
    const low = min === 0 ? value > 0 : value >= min;
    if (!(low && value <= max)) {
      throw new LoraforgeError(
        `${source}: "${key}" must be ${min === 0 ? 'greater than 0' : `at least ${min}`} and at most ${max} (got ${value})`,
        'the config.json is corrupt or not for this kind of model',
      );
    }
  }
  return config;
}

/**
 * int(head_dim · partial_rotary_factor) (top level, or in transformers 5's rope_parameters),
 * checked against LongRoPE's per-frequency factor lists.
 */
function rotaryDimOf(
  raw: Record<string, unknown>,
  headDim: number,
  scaling: RopeScaling | null,
  source: string,
): number {
  const params = isObject(raw.rope_parameters) ? raw.rope_parameters : {};
  const factor = raw.partial_rotary_factor ?? params.partial_rotary_factor ?? 1;
  if (typeof factor !== 'number' || !(factor > 0 && factor <= 1)) {
    throw new LoraforgeError(
      `${source}: partial_rotary_factor must be in (0, 1] (got ${JSON.stringify(factor)})`,
    );
  }
  const dim = Math.floor(headDim * factor);
  if (dim % 2 !== 0) {
    throw new LoraforgeError(
      `${source}: head_dim ${headDim} × partial_rotary_factor ${factor} = ${dim} is odd (RoPE rotates pairs)`,
    );
  }
  if (scaling?.type === 'longrope') {
    for (const [name, list] of [
      ['short_factor', scaling.shortFactor],
      ['long_factor', scaling.longFactor],
    ] as const) {
      if (list.length !== dim / 2) {
        throw new LoraforgeError(
          `${source}: rope_scaling ${name} has ${list.length} entries, the rotated head part needs ${dim / 2}`,
        );
      }
    }
  }
  return dim;
}
