/**
 * LoraConfig with PEFT's field names and defaults, read from and written to adapter_config.json so
 * Python PEFT, vLLM and llama.cpp can use loraforge adapters and the other way round. Every field
 * of PEFT 0.18.1's LoraConfig is either implemented with PEFT's semantics or refused by name
 * (peft/config-fields.ts); nothing is silently dropped.
 */
import { RE2JS } from 're2js';
import { LoraforgeError } from '../util/errors.ts';
import { coerceOption, option, optionDefaults, type OptionValues } from '../util/options.ts';
import { EMBED_PATH, LM_HEAD_PATH, PROJECTION_NAMES } from '../models/decoder.ts';

export type LoraBias = 'none' | 'all' | 'lora_only';
/**
 * Initialisations loraforge trains with: PEFT's `true` (kaiming), 'gaussian', and 'pissa' /
 * 'olora' (which also turn the adapted base weights into their residual, peft/residual-init.ts).
 */
export type LoraInit = 'kaiming' | 'gaussian' | 'pissa' | 'olora';

/** The module names a config's list may name, for error messages. */
export const LINEAR_MODULE_NAMES = [...PROJECTION_NAMES, LM_HEAD_PATH] as const;

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
    "all-linear, or comma-separated module names or '.'-suffixes (q_proj, self_attn.q_proj; PEFT target_modules)",
    'all-linear',
  ),
  lora_exclude: option.string("modules left out (PEFT's exclude_modules), comma-separated"),
  lora_layers: option.string(
    "layer indexes to adapt, comma-separated (PEFT's layers_to_transform)",
  ),
  lora_rank_pattern: option.map("per-module rank, e.g. q_proj=16 (PEFT's rank_pattern)"),
  lora_alpha_pattern: option.map("per-module alpha, e.g. v_proj=32 (PEFT's alpha_pattern)"),
  use_rslora: option.boolean('scale by alpha / sqrt(r) (rank-stabilized LoRA)', false),
  use_dora: option.boolean("DoRA: a trained magnitude per output row (PEFT's use_dora)", false),
  // lora_only is left out: PEFT 0.18.1 saves no biases for it.
  lora_bias: option.choice("PEFT's bias: train every bias (all) or none", ['none', 'all'], 'none'),
  additional_target: option.string(
    "modules trained whole and saved with the adapter: embed_tokens, lm_head (PEFT's modules_to_save)",
  ),
  lora_init: option.choice(
    'A initialisation: kaiming (PEFT default), gaussian; pissa / olora also make the base weights their residual',
    ['kaiming', 'gaussian', 'pissa', 'olora'],
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
  /** A list (exact module path or `.`-suffix), a full-match regex, or 'all-linear'. */
  targetModules: string[] | string;
  /** Same forms as targetModules; matched modules get no adapter. */
  excludeModules: string[] | string | null;
  layersToTransform: number[] | number | null;
  layersPattern: string[] | string | null;
  /** Per-module rank / alpha, keyed by a regex matched against a suffix of the module path. */
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  useRslora: boolean;
  useDora: boolean;
  bias: LoraBias;
  /** Whole modules trained and saved with the adapter (embed_tokens, lm_head). */
  modulesToSave: string[] | null;
  init: LoraInit;
  baseModelNameOrPath?: string;
}

const commaList = (value: string | undefined): string[] | null =>
  value === undefined
    ? null
    : value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

function positiveNumbers(
  map: Record<string, string> | undefined,
  key: string,
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(map ?? {}).map(([k, v]) => {
      const n = Number(v);
      if (!(n > 0)) throw new LoraforgeError(`${key}: ${k}=${v} is not a positive number`);
      return [k, n];
    }),
  );
}

/** The LoraConfig that `LORA_OPTIONS` values describe (every value checked). */
export function loraConfigFromOptions(
  v: LoraOptionValues,
  baseModelNameOrPath?: string,
): LoraConfig {
  const layers = commaList(v.lora_layers)?.map((s) => {
    if (!/^\d+$/.test(s)) throw new LoraforgeError(`lora_layers: "${s}" is not a layer index`);
    return Number(s);
  });
  const targets = v.lora_target === 'all-linear' ? 'all-linear' : commaList(v.lora_target)!;
  if (Array.isArray(targets)) {
    // A list names modules by their last part (q_proj) or a '.'-suffix of the path: a typo would
    // adapt nothing, so it is refused here, before the model loads.
    const known: readonly string[] = [...LINEAR_MODULE_NAMES, 'embed_tokens'];
    const unknown = targets.filter((t) => !known.includes(t.split('.').at(-1)!));
    if (unknown.length) {
      throw new LoraforgeError(
        `lora_target: target_modules ${JSON.stringify(unknown)} are not projections of this model`,
        `choose from ${known.join(', ')} (or '.'-suffixes of module paths), or all-linear`,
      );
    }
  }
  return checkConfig(
    {
      r: v.lora_rank,
      loraAlpha: v.lora_alpha,
      loraDropout: v.lora_dropout,
      targetModules: targets,
      excludeModules: commaList(v.lora_exclude),
      layersToTransform: layers ?? null,
      layersPattern: null,
      rankPattern: positiveNumbers(v.lora_rank_pattern, 'lora_rank_pattern'),
      alphaPattern: positiveNumbers(v.lora_alpha_pattern, 'lora_alpha_pattern'),
      useRslora: v.use_rslora,
      useDora: v.use_dora,
      bias: v.lora_bias,
      modulesToSave: commaList(v.additional_target),
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

export { EMBED_PATH, LM_HEAD_PATH };
/** PEFT's EMBEDDING_LAYER_NAMES: targeting these also saves their base weights. */
const EMBEDDING_LAYER_NAMES = ['embed_tokens', 'lm_head'];

const MAX_PATTERN_LENGTH = 4096;
const compiled = new Map<string, RE2JS>();

/**
 * A pattern of an adapter config (target_modules, exclude_modules, layers_pattern, rank_pattern
 * keys, modules_to_save), compiled by RE2: matching time is linear in the module path whatever
 * the pattern, so an adapter_config.json from anyone cannot hang the process with catastrophic
 * backtracking (RE2 has no lookaround or backreferences).
 */
function re2(pattern: string, field = 'target_modules'): RE2JS {
  let regex = compiled.get(pattern);
  if (regex) return regex;
  const shown =
    pattern.length > 80 ? `${JSON.stringify(pattern.slice(0, 80))}...` : JSON.stringify(pattern);
  if (pattern.length > MAX_PATTERN_LENGTH)
    throw new LoraforgeError(`${field} pattern is longer than ${MAX_PATTERN_LENGTH} characters`);
  try {
    regex = RE2JS.compile(pattern);
  } catch (err) {
    throw new LoraforgeError(
      `${field} ${shown} is not a valid regular expression (${(err as Error).message.replace(/:\s*`[^]*$/, '')})`,
      'use module names such as ["q_proj", "v_proj"], or an RE2 pattern (no lookaround or backreferences)',
    );
  }
  compiled.set(pattern, regex);
  return regex;
}

/** Python's re.fullmatch. */
function fullMatch(pattern: string, key: string): boolean {
  return re2(pattern).matches(key);
}

/** PEFT's list rule: the exact module path, or a path ending with '.' + the entry. */
function listMatch(list: string[], key: string): boolean {
  return list.includes(key) || list.some((t) => key.endsWith(`.${t}`));
}

/** The layer index in a module path, as PEFT extracts it (optionally after a `layers_pattern`). */
function layerIndexOf(c: LoraConfig, key: string): number | null {
  const patterns =
    c.layersPattern === null || c.layersPattern.length === 0
      ? [null]
      : typeof c.layersPattern === 'string'
        ? [c.layersPattern]
        : c.layersPattern;
  for (const p of patterns) {
    const m = re2(
      p === null ? '^.*\\.[^.]*\\.(\\d+)\\.' : `^.*\\.(?:${p})\\.(\\d+)\\.`,
      'layers_pattern',
    ).matcher(key);
    if (m.lookingAt()) return Number(m.group(1));
  }
  return null;
}

/** Is the module a modules_to_save module (those never receive LoRA)? */
export function isSavedModule(c: LoraConfig, key: string): boolean {
  return (c.modulesToSave ?? []).some((m) =>
    re2(`(?:|.*\\.)${m}(?:|\\..*)`, 'modules_to_save').matches(key),
  );
}

/**
 * PEFT's check_target_module_exists: does the module at `key` (e.g. model.layers.0.self_attn.q_proj)
 * receive an adapter? `linear` tells whether the module is a linear layer (for 'all-linear', which
 * PEFT resolves to every linear layer but the output head).
 */
export function isTargeted(c: LoraConfig, key: string, linear = key !== EMBED_PATH): boolean {
  const ex = c.excludeModules;
  if (ex !== null && (typeof ex === 'string' ? fullMatch(ex, key) : listMatch(ex, key)))
    return false;
  if (isSavedModule(c, key)) return false;
  const t = c.targetModules;
  if (t === 'all-linear') return linear && key !== LM_HEAD_PATH;
  if (typeof t === 'string') return fullMatch(t, key);
  if (t.includes(key)) return true;
  if (!listMatch(t, key)) return false;
  const layers = c.layersToTransform;
  if (layers === null || (Array.isArray(layers) && layers.length === 0)) return true;
  const index = layerIndexOf(c, key);
  if (index === null) return false;
  return typeof layers === 'number' ? index === layers : layers.includes(index);
}

/** PEFT's get_pattern_key: the first pattern matching a suffix of the key. */
function patternValue(patterns: Record<string, number>, key: string): number | undefined {
  for (const [pattern, value] of Object.entries(patterns)) {
    if (re2(`(?:.*\\.)?(?:${pattern})`, 'rank_pattern / alpha_pattern').matches(key)) return value;
  }
  return patterns[key];
}

/** Rank, alpha and output scale of one adapted module (rank_pattern / alpha_pattern applied). */
export function moduleLora(
  c: LoraConfig,
  key: string,
): { r: number; alpha: number; scale: number } {
  const r = patternValue(c.rankPattern, key) ?? c.r;
  const alpha = patternValue(c.alphaPattern, key) ?? c.loraAlpha;
  return { r, alpha, scale: c.useRslora ? alpha / Math.sqrt(r) : alpha / r };
}

export function loraScale(c: LoraConfig, key = ''): number {
  return moduleLora(c, key).scale;
}

/**
 * PEFT saves the base weights of embed_tokens / lm_head beside their LoRA when target_modules
 * names them (save_embedding_layers="auto").
 */
export function embeddingIsTargeted(c: LoraConfig, moduleKeys: string[]): boolean {
  const t = c.targetModules;
  if (t === 'all-linear') return false;
  if (typeof t === 'string') {
    return moduleKeys.some(
      (k) =>
        EMBEDDING_LAYER_NAMES.some((e) => k === e || k.endsWith(`.${e}`)) &&
        fullMatch(t, k),
    );
  }
  return EMBEDDING_LAYER_NAMES.some((e) => t.includes(e));
}

function checkConfig(c: LoraConfig, where: string): LoraConfig {
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  coerceOption(LORA_OPTIONS.lora_rank, c.r, `${where}: r`);
  coerceOption(LORA_OPTIONS.lora_alpha, c.loraAlpha, `${where}: lora_alpha`);
  coerceOption(LORA_OPTIONS.lora_dropout, c.loraDropout, `${where}: lora_dropout`);
  // Compiled now, so a bad pattern is an error naming its file rather than the first module.
  for (const [field, value] of [
    ['target_modules', c.targetModules],
    ['exclude_modules', c.excludeModules],
  ] as const) {
    if (typeof value === 'string' && value !== 'all-linear') re2(value, `${where}: ${field}`);
  }
  for (const [name, patterns] of [
    ['rank_pattern', c.rankPattern],
    ['alpha_pattern', c.alphaPattern],
  ] as const) {
    for (const [key, v] of Object.entries(patterns)) {
      if (!(name === 'rank_pattern' ? positiveInt(v) : v > 0))
        throw new LoraforgeError(`${where}: ${name} "${key}" must be positive (got ${v})`);
    }
  }
  if (typeof c.targetModules === 'string' && (c.layersToTransform !== null || c.layersPattern)) {
    throw new LoraforgeError(
      `${where}: layers_to_transform / layers_pattern need target_modules as a list (got the regex ${JSON.stringify(c.targetModules)})`,
    );
  }
  if (c.layersPattern && c.layersToTransform === null) {
    throw new LoraforgeError(`${where}: layers_pattern is set without layers_to_transform`);
  }
  if ((c.init === 'pissa' || c.init === 'olora') && c.useDora)
    throw new LoraforgeError(
      `${where}: init_lora_weights "${c.init}" with use_dora is not supported`,
    );
  for (const m of c.modulesToSave ?? []) {
    if (!EMBEDDING_LAYER_NAMES.includes(m.split('.').at(-1)!)) {
      throw new LoraforgeError(
        `${where}: modules_to_save ${JSON.stringify(m)} is not supported`,
        'loraforge trains and saves whole copies of embed_tokens and lm_head only',
      );
    }
  }
  return c;
}

/** A full, validated LoraConfig from some fields and the defaults; `where` names the source in error messages. */
export function makeLoraConfig(partial: Partial<LoraConfig>, where = 'lora config'): LoraConfig {
  return checkConfig({ ...DEFAULT_LORA_CONFIG, ...partial }, where);
}

