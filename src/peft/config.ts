/**
 * LoraConfig with PEFT's field names and defaults, read from and written to adapter_config.json so
 * Python PEFT, vLLM and llama.cpp can use loraforge adapters and the other way round. Every field
 * of PEFT 0.18.1's LoraConfig is either implemented with PEFT's semantics or refused by name
 * (peft/config-fields.ts); nothing is silently dropped.
 */
import { LoraforgeError } from '../util/errors.ts';
import { EMBED_PATH, LM_HEAD_PATH, PROJECTION_NAMES } from '../models/decoder.ts';

export type LoraBias = 'none' | 'all' | 'lora_only';
/**
 * Initialisations loraforge trains with: PEFT's `true` (kaiming), 'gaussian', and 'pissa' /
 * 'olora' (which also turn the adapted base weights into their residual, peft/residual-init.ts).
 */
export type LoraInit = 'kaiming' | 'gaussian' | 'pissa' | 'olora';

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

/** PEFT's LoraConfig defaults where loraforge keeps them (r 8, alpha 16, dropout 0.05, all linear layers). */
export const DEFAULT_LORA_CONFIG: LoraConfig = {
  r: 8,
  loraAlpha: 16,
  loraDropout: 0.05,
  targetModules: 'all-linear',
  excludeModules: null,
  layersToTransform: null,
  layersPattern: null,
  rankPattern: {},
  alphaPattern: {},
  useRslora: false,
  useDora: false,
  bias: 'none',
  modulesToSave: null,
  init: 'kaiming',
};

export { EMBED_PATH, LM_HEAD_PATH };
/** PEFT's EMBEDDING_LAYER_NAMES: targeting these also saves their base weights. */
const EMBEDDING_LAYER_NAMES = ['embed_tokens', 'lm_head'];

/** Python's re.fullmatch. */
function fullMatch(pattern: string, key: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(key);
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
    const m = new RegExp(
      p === null ? '^.*\\.[^.]*\\.(\\d+)\\.' : `^.*\\.(?:${p})\\.(\\d+)\\.`,
    ).exec(key);
    if (m) return Number(m[1]);
  }
  return null;
}

/** Is the module a modules_to_save module (those never receive LoRA)? */
export function isSavedModule(c: LoraConfig, key: string): boolean {
  return (c.modulesToSave ?? []).some((m) => new RegExp(`^(?:|.*\\.)${m}(?:$|\\..*)`).test(key));
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
    if (new RegExp(`^(?:.*\\.)?(?:${pattern})$`).test(key)) return value;
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
        EMBEDDING_LAYER_NAMES.some((e) => new RegExp(`^(?:.*\\.)?${e}$`).test(k)) &&
        fullMatch(t, k),
    );
  }
  return EMBEDDING_LAYER_NAMES.some((e) => t.includes(e));
}

function checkConfig(c: LoraConfig, where: string): LoraConfig {
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  if (!positiveInt(c.r))
    throw new LoraforgeError(`${where}: r must be a positive integer (got ${c.r})`);
  if (!(c.loraAlpha > 0))
    throw new LoraforgeError(`${where}: lora_alpha must be positive (got ${c.loraAlpha})`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) {
    throw new LoraforgeError(`${where}: lora_dropout must be in [0, 1) (got ${c.loraDropout})`);
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

/** The module names a config's list may name, for error messages. */
export const LINEAR_MODULE_NAMES = [...PROJECTION_NAMES, LM_HEAD_PATH] as const;
