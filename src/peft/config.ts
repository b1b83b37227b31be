/**
 * LoraConfig with PEFT's field names and defaults, read from and written to adapter_config.json so
 * Python PEFT, vLLM and llama.cpp can use loraforge adapters and the other way round.
 */
import { RE2JS } from 're2js';
import { LoraforgeError } from '../util/errors.ts';
import { coerceOption, option, optionDefaults, type OptionValues } from '../util/options.ts';
import { PROJECTION_NAMES } from '../models/decoder.ts';

/**
 * The LoRA options of `loraforge train`, declared once (LLaMA-Factory's YAML names; PEFT's field
 * in each help): the CLI flags, YAML validation, `LoraConfig` defaults and its checks derive from it.
 */
export const LORA_OPTIONS = {
  lora_rank: option.integer('LoRA rank r (PEFT r)', 8, { min: 1, max: 65536 }),
  // Real adapters use 1..~1000; far beyond, the scale alone overflows the activations.
  lora_alpha: option.number('LoRA alpha; the update is scaled by alpha / r', 16, {
    above: 0,
    max: 65536,
  }),
  lora_dropout: option.number('dropout on the LoRA path', 0.05, { min: 0, below: 1 }),
  lora_target: option.string(
    'all-linear, or comma-separated projection names (PEFT target_modules)',
    'all-linear',
  ),
  use_rslora: option.boolean('scale by alpha / sqrt(r) (rank-stabilized LoRA)', false),
  lora_init: option.choice(
    'A initialisation: kaiming (PEFT default) | gaussian',
    ['kaiming', 'gaussian'],
    'kaiming',
  ),
};

/** Values of the LoRA options (YAML keys), as a resolved config holds them. */
export type LoraOptionValues = OptionValues<typeof LORA_OPTIONS>;

/** A LoRA adapter's shape and scaling, with PEFT's `LoraConfig` fields (camelCase). */
export interface LoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /** Module names (matched against the last path component), a regex, or 'all-linear'. */
  targetModules: string[] | string;
  useRslora: boolean;
  /** 'kaiming' = PEFT's default (Kaiming-uniform A, zero B); 'gaussian' = N(0, 1/r) A, zero B. */
  init: 'kaiming' | 'gaussian';
  baseModelNameOrPath?: string;
}

/** The LoraConfig that `LORA_OPTIONS` values describe. */
export function loraConfigFromOptions(
  v: LoraOptionValues,
  baseModelNameOrPath?: string,
): LoraConfig {
  return checkConfig(
    {
      r: v.lora_rank,
      loraAlpha: v.lora_alpha,
      loraDropout: v.lora_dropout,
      targetModules:
        v.lora_target === 'all-linear'
          ? 'all-linear'
          : v.lora_target.split(',').map((s) => s.trim()),
      useRslora: v.use_rslora,
      init: v.lora_init,
      baseModelNameOrPath,
    },
    'lora config',
  );
}

/** PEFT's LoraConfig defaults where loraforge keeps them, from `LORA_OPTIONS` (r 8, alpha 16, dropout 0.05, all linear layers). */
export const DEFAULT_LORA_CONFIG: LoraConfig = loraConfigFromOptions(
  optionDefaults(LORA_OPTIONS) as LoraOptionValues,
);

export function loraScale(c: LoraConfig): number {
  return c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r;
}

/** Does a module path (e.g. model.layers.0.self_attn.q_proj) receive an adapter? */
export function isTargeted(c: LoraConfig, modulePath: string): boolean {
  const t = c.targetModules;
  if (t === 'all-linear') return true; // every projection; the LM head is never targeted
  if (typeof t === 'string') return targetRegex(t, 'target_modules').matches(modulePath);
  const leaf = modulePath.split('.').at(-1)!;
  return t.includes(leaf) || t.includes(modulePath);
}

const MAX_PATTERN_LENGTH = 4096;
const compiled = new Map<string, RE2JS>();

/**
 * A target_modules pattern as PEFT uses it (re.fullmatch), compiled by RE2: matching time is
 * linear in the module path whatever the pattern, so an adapter_config.json from anyone cannot
 * hang the process with catastrophic backtracking (RE2 has no lookaround or backreferences).
 */
function targetRegex(pattern: string, where: string): RE2JS {
  let regex = compiled.get(pattern);
  if (regex) return regex;
  const shown =
    pattern.length > 80 ? `${JSON.stringify(pattern.slice(0, 80))}...` : JSON.stringify(pattern);
  if (pattern.length > MAX_PATTERN_LENGTH)
    throw new LoraforgeError(
      `${where}: target_modules pattern is longer than ${MAX_PATTERN_LENGTH} characters`,
    );
  try {
    regex = RE2JS.compile(pattern);
  } catch (err) {
    throw new LoraforgeError(
      `${where}: target_modules ${shown} is not a valid regular expression (${(err as Error).message.replace(/:\s*`[^]*$/, '')})`,
      'use module names such as ["q_proj", "v_proj"], or an RE2 pattern (no lookaround or backreferences)',
    );
  }
  compiled.set(pattern, regex);
  return regex;
}

function checkConfig(c: LoraConfig, where: string): LoraConfig {
  coerceOption(LORA_OPTIONS.lora_rank, c.r, `${where}: r`);
  coerceOption(LORA_OPTIONS.lora_alpha, c.loraAlpha, `${where}: lora_alpha`);
  coerceOption(LORA_OPTIONS.lora_dropout, c.loraDropout, `${where}: lora_dropout`);
  if (typeof c.targetModules === 'string' && c.targetModules !== 'all-linear')
    targetRegex(c.targetModules, where);
  if (Array.isArray(c.targetModules)) {
    const unknown = c.targetModules.filter(
      (m) => !(PROJECTION_NAMES as readonly string[]).includes(m.split('.').at(-1)!),
    );
    if (unknown.length) {
      throw new LoraforgeError(
        `${where}: target_modules ${JSON.stringify(unknown)} are not projections of this model`,
        `choose from ${PROJECTION_NAMES.join(', ')} or 'all-linear'`,
      );
    }
  }
  return c;
}

/** A full, validated LoraConfig from some fields and the defaults; `where` names the source in error messages. */
export function makeLoraConfig(partial: Partial<LoraConfig>, where = 'lora config'): LoraConfig {
  return checkConfig({ ...DEFAULT_LORA_CONFIG, ...partial }, where);
}

/** Parses PEFT's adapter_config.json. */
export function parsePeftConfig(raw: Record<string, unknown>, where: string): LoraConfig {
  if (raw.peft_type !== undefined && raw.peft_type !== 'LORA') {
    throw new LoraforgeError(
      `${where}: peft_type ${JSON.stringify(raw.peft_type)} is not supported (only LORA)`,
    );
  }
  if (raw.use_dora === true)
    throw new LoraforgeError(`${where}: DoRA adapters are not supported yet`);
  const hasPatterns = (v: unknown) => v && typeof v === 'object' && Object.keys(v).length > 0;
  if (hasPatterns(raw.rank_pattern) || hasPatterns(raw.alpha_pattern)) {
    throw new LoraforgeError(`${where}: rank_pattern / alpha_pattern are not supported yet`);
  }
  const targets = raw.target_modules;
  return checkConfig(
    {
      r: Number(raw.r ?? 8),
      loraAlpha: Number(raw.lora_alpha ?? 8),
      loraDropout: Number(raw.lora_dropout ?? 0),
      targetModules: Array.isArray(targets) ? targets.map(String) : String(targets ?? 'all-linear'),
      useRslora: raw.use_rslora === true,
      init: raw.init_lora_weights === 'gaussian' ? 'gaussian' : 'kaiming',
      baseModelNameOrPath:
        typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : undefined,
    },
    where,
  );
}

/** adapter_config.json as PEFT 0.12 writes it. */
export function toPeftConfig(c: LoraConfig): Record<string, unknown> {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: c.baseModelNameOrPath ?? null,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: c.init === 'gaussian' ? 'gaussian' : true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: c.targetModules === 'all-linear' ? [...PROJECTION_NAMES] : c.targetModules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.useRslora,
  };
}
