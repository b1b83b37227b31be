/**
 * LoraConfig with PEFT's field names and defaults, read from and written to adapter_config.json so
 * Python PEFT, vLLM and llama.cpp can use loraforge adapters and the other way round.
 */
import { LoraforgeError } from '../util/errors.ts';
import { PROJECTION_NAMES } from '../models/decoder.ts';

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

/** PEFT's LoraConfig defaults where loraforge keeps them (r 8, alpha 16, dropout 0.05, all linear layers). */
export const DEFAULT_LORA_CONFIG: LoraConfig = {
  r: 8,
  loraAlpha: 16,
  loraDropout: 0.05,
  targetModules: 'all-linear',
  useRslora: false,
  init: 'kaiming',
};

export function loraScale(c: LoraConfig): number {
  return c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r;
}

/** Does a module path (e.g. model.layers.0.self_attn.q_proj) receive an adapter? */
export function isTargeted(c: LoraConfig, modulePath: string): boolean {
  const t = c.targetModules;
  if (t === 'all-linear') return true; // every projection; the LM head is never targeted
  if (typeof t === 'string') return new RegExp(`^(?:${t})$`).test(modulePath);
  const leaf = modulePath.split('.').at(-1)!;
  return t.includes(leaf) || t.includes(modulePath);
}

function checkConfig(c: LoraConfig, where: string): LoraConfig {
  if (!Number.isInteger(c.r) || c.r <= 0)
    throw new LoraforgeError(`${where}: r must be a positive integer (got ${c.r})`);
  if (!(c.loraAlpha > 0))
    throw new LoraforgeError(`${where}: lora_alpha must be positive (got ${c.loraAlpha})`);
  if (!(c.loraDropout >= 0 && c.loraDropout < 1)) {
    throw new LoraforgeError(`${where}: lora_dropout must be in [0, 1) (got ${c.loraDropout})`);
  }
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

/**
 * adapter_config.json as PEFT 0.12 writes it. `adaptedNames`: the module names the adapter has
 * (q_proj …, or Phi-3's qkv_proj …), written for 'all-linear' as PEFT writes what it expanded.
 */
export function toPeftConfig(c: LoraConfig, adaptedNames: string[]): Record<string, unknown> {
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
    target_modules: c.targetModules === 'all-linear' ? adaptedNames : c.targetModules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.useRslora,
  };
}
