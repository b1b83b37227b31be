/**
 * RoPE settings of a config: `rope_theta` and `rope_scaling` (transformers 4), or both inside
 * `rope_parameters` (transformers 5). The type is `rope_type`, or `type` in older configs; a
 * missing type means "default".
 */
import { LoraforgeError } from '../util/errors.ts';
import { SUPPORTED_ROPE_SCALING, type RopeScaling } from './rope-frequencies.ts';

export interface RopeSettings {
  /** undefined when the config leaves theta to the family's default. */
  theta: number | undefined;
  /** null for the default (unscaled) RoPE. */
  scaling: RopeScaling | null;
}

/** Top-level config keys that LongRoPE's scaling depends on. */
export interface RopeContext {
  maxPositionEmbeddings: number;
  /** config.original_max_position_embeddings (Phi-3 keeps it outside rope_scaling). */
  originalMaxPositionEmbeddings: number | undefined;
}

/**
 * Reads `params` (the object under `key`, or null) on top of a `rope_theta` already found.
 * `key` names the field in error messages; `context` is needed by LongRoPE only.
 */
export function parseRopeParams(
  params: unknown,
  key: string,
  theta: number | undefined,
  source: string,
  context?: RopeContext,
): RopeSettings {
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
  if (type === 'longrope' && context) {
    return { theta, scaling: longRope(p, key, source, context) };
  }
  throw new LoraforgeError(
    `${source}: RoPE scaling type ${JSON.stringify(type)} (${key}) is not supported`,
    `loraforge supports RoPE scaling types default, ${SUPPORTED_ROPE_SCALING.join(', ')}`,
  );
}

/**
 * LongRoPE as transformers 4.57 computes it (_compute_longrope_parameters): with a top-level
 * original_max_position_embeddings (Phi-3) the scale s is max_position_embeddings / it; else the
 * original length is the one inside the parameters (transformers 5 keeps it there) or
 * max_position_embeddings, and s the `factor` key (or max / original). Attention factor
 * √(1 + ln s / ln original) (1 when s ≤ 1) unless `attention_factor` is given.
 */
function longRope(
  p: Record<string, unknown>,
  key: string,
  source: string,
  context: RopeContext,
): RopeScaling {
  const factors = (name: string): number[] => {
    const value = p[name];
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'number' && v > 0)) {
      throw new LoraforgeError(
        `${source}: ${key} type "longrope" needs "${name}" as a list of positive numbers`,
      );
    }
    return value as number[];
  };
  const nested = p.original_max_position_embeddings;
  const original =
    context.originalMaxPositionEmbeddings ??
    (typeof nested === 'number' ? nested : context.maxPositionEmbeddings);
  const scale =
    context.originalMaxPositionEmbeddings !== undefined
      ? context.maxPositionEmbeddings / original
      : typeof p.factor === 'number'
        ? p.factor
        : context.maxPositionEmbeddings / original;
  const given = p.attention_factor;
  return {
    type: 'longrope',
    shortFactor: factors('short_factor'),
    longFactor: factors('long_factor'),
    originalMaxPositionEmbeddings: original,
    attentionFactor:
      typeof given === 'number'
        ? given
        : scale <= 1
          ? 1
          : Math.sqrt(1 + Math.log(scale) / Math.log(original)),
  };
}

/** The model's (global) RoPE: `rope_parameters` if present, else `rope_theta` + `rope_scaling`. */
export function parseRope(
  raw: Record<string, unknown>,
  source: string,
  context: RopeContext,
): RopeSettings {
  const key = raw.rope_parameters != null ? 'rope_parameters' : 'rope_scaling';
  const theta = typeof raw.rope_theta === 'number' ? raw.rope_theta : undefined;
  const params = raw[key];
  // transformers 5 gives models with two RoPE tables one entry per layer type.
  if (key === 'rope_parameters' && isObject(params) && isObject(params.full_attention)) {
    return parseRopeParams(params.full_attention, `${key}.full_attention`, theta, source, context);
  }
  return parseRopeParams(params, key, theta, source, context);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
