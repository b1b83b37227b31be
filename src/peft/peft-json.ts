/**
 * adapter_config.json <-> LoraConfig. Every field of PEFT 0.18.1's LoraConfig (and its PeftConfig
 * base) is listed once: parsed into the config, accepted because it cannot change the loaded
 * model, or refused by name unless it holds PEFT's default. Fields PEFT does not have yet are
 * refused unless they hold an empty value.
 */
import { LoraforgeError } from '../util/errors.ts';
import { makeLoraConfig, type LoraConfig } from './config.ts';

type Raw = Record<string, unknown>;

/** How a field is treated: 'parsed' below, 'any' value accepted, or the only value accepted. */
type FieldRule = 'parsed' | 'any' | { only: unknown[]; why: string };

const isEmpty = (v: unknown): boolean =>
  v === null ||
  v === false ||
  (Array.isArray(v) && v.length === 0) ||
  (typeof v === 'object' && v !== null && Object.keys(v).length === 0);

/** Initialisations that rewrite the base weights when PEFT loads the adapter. */
const BASE_REWRITING_INITS = /^(pissa_niter_.*|corda|loftq)$/;

const FIELDS: Record<string, FieldRule> = {
  // PeftConfig
  peft_type: 'parsed',
  task_type: { only: ['CAUSAL_LM', null], why: 'loraforge runs causal language models' },
  auto_mapping: 'any',
  peft_version: 'any',
  base_model_name_or_path: 'parsed',
  revision: 'any',
  inference_mode: 'any',
  // LoraConfig
  r: 'parsed',
  target_modules: 'parsed',
  exclude_modules: 'parsed',
  lora_alpha: 'parsed',
  lora_dropout: 'parsed',
  fan_in_fan_out: { only: [false], why: 'only for GPT-2 style Conv1D weights' },
  bias: 'parsed',
  use_rslora: 'parsed',
  modules_to_save: 'parsed',
  init_lora_weights: 'parsed',
  layers_to_transform: 'parsed',
  layers_pattern: 'parsed',
  rank_pattern: 'parsed',
  alpha_pattern: 'parsed',
  megatron_config: { only: [null], why: 'Megatron parallel layers are not supported' },
  megatron_core: 'any', // only read together with megatron_config
  trainable_token_indices: { only: [null], why: 'trainable tokens are not supported' },
  loftq_config: { only: [{}], why: 'LoftQ quantises the base weights' },
  eva_config: 'any', // EVA only chooses the initial A (and records ranks in rank_pattern)
  corda_config: 'any', // read only with init_lora_weights="corda", refused below
  use_dora: 'parsed',
  alora_invocation_tokens: { only: [null], why: 'activated LoRA (aLoRA) is not supported' },
  use_qalora: { only: [false], why: 'QALoRA needs GPTQ-quantised base weights' },
  qalora_group_size: 'any', // only read with use_qalora
  layer_replication: { only: [null], why: 'layer replication is not supported' },
  runtime_config: 'any',
  lora_bias: { only: [false], why: 'a bias on lora_B is not supported' },
  target_parameters: { only: [null, []], why: 'LoRA on raw nn.Parameters is not supported' },
  arrow_config: { only: [null], why: 'Arrow routing is not supported' },
  ensure_weight_tying: { only: [false], why: 'tied modules_to_save copies are not supported' },
};

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function stringOrList(v: unknown, field: string, where: string): string[] | string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
  throw new LoraforgeError(`${where}: ${field} must be a string or a list of strings`);
}

function numberMap(v: unknown, field: string, where: string): Record<string, number> {
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v))
    throw new LoraforgeError(`${where}: ${field} must be a mapping of module patterns to numbers`);
  return Object.fromEntries(Object.entries(v).map(([k, n]) => [k, Number(n)]));
}

function parseInit(v: unknown, where: string): LoraConfig['init'] {
  if (v === undefined || v === true || v === false) return 'kaiming';
  if (v === 'gaussian' || v === 'pissa' || v === 'olora') return v;
  // These only choose the starting A and B, which the file overrides.
  if (v === 'orthogonal' || v === 'eva') return 'kaiming';
  if (typeof v === 'string' && BASE_REWRITING_INITS.test(v)) {
    throw new LoraforgeError(
      `${where}: init_lora_weights ${JSON.stringify(v)} is not supported: PEFT rewrites the base weights ${String(v).startsWith('pissa_niter') ? 'with a randomised SVD' : 'from data or quantisation'} when it loads such an adapter`,
      "convert it to a plain LoRA with PEFT's save_pretrained(..., path_initial_model_for_weight_conversion=...)",
    );
  }
  throw new LoraforgeError(`${where}: init_lora_weights ${JSON.stringify(v)} is not supported`);
}

/** Parses PEFT's adapter_config.json; unknown or unsupported settings are refused by name. */
export function parsePeftConfig(raw: Raw, where: string): LoraConfig {
  if (raw.peft_type !== undefined && raw.peft_type !== 'LORA') {
    throw new LoraforgeError(
      `${where}: peft_type ${JSON.stringify(raw.peft_type)} is not supported (only LORA)`,
    );
  }
  for (const [field, value] of Object.entries(raw)) {
    const rule = FIELDS[field];
    if (rule === undefined) {
      if (isEmpty(value)) continue; // a newer PEFT's field left at its default
      throw new LoraforgeError(
        `${where}: unknown field ${field} = ${JSON.stringify(value)}`,
        'written by a newer PEFT? loraforge knows the fields of PEFT 0.18.1',
      );
    }
    if (typeof rule === 'object' && !rule.only.some((ok) => sameJson(ok, value))) {
      throw new LoraforgeError(
        `${where}: ${field} = ${JSON.stringify(value)} is not supported (${rule.why})`,
      );
    }
  }
  const bias = raw.bias ?? 'none';
  if (bias !== 'none' && bias !== 'all' && bias !== 'lora_only')
    throw new LoraforgeError(
      `${where}: bias ${JSON.stringify(bias)} is not none, all or lora_only`,
    );
  const layers = raw.layers_to_transform ?? null;
  if (
    layers !== null &&
    !Number.isInteger(layers) &&
    !(Array.isArray(layers) && layers.every(Number.isInteger))
  )
    throw new LoraforgeError(`${where}: layers_to_transform must be an integer or a list of them`);
  const targets = stringOrList(raw.target_modules, 'target_modules', where);
  if (targets === null)
    throw new LoraforgeError(`${where}: target_modules is missing`, 'PEFT writes it on save');
  const modulesToSave = stringOrList(raw.modules_to_save, 'modules_to_save', where);
  return makeLoraConfig(
    {
      r: Number(raw.r ?? 8),
      loraAlpha: Number(raw.lora_alpha ?? 8),
      loraDropout: Number(raw.lora_dropout ?? 0),
      targetModules:
        typeof targets === 'string' && targets.toLowerCase() === 'all-linear'
          ? 'all-linear'
          : targets,
      excludeModules: stringOrList(raw.exclude_modules, 'exclude_modules', where),
      layersToTransform: layers as number[] | number | null,
      layersPattern: stringOrList(raw.layers_pattern, 'layers_pattern', where),
      rankPattern: numberMap(raw.rank_pattern, 'rank_pattern', where),
      alphaPattern: numberMap(raw.alpha_pattern, 'alpha_pattern', where),
      useRslora: raw.use_rslora === true,
      useDora: raw.use_dora === true,
      bias,
      modulesToSave: typeof modulesToSave === 'string' ? [modulesToSave] : modulesToSave,
      init: parseInit(raw.init_lora_weights, where),
      baseModelNameOrPath:
        typeof raw.base_model_name_or_path === 'string' ? raw.base_model_name_or_path : undefined,
    },
    where,
  );
}

/**
 * adapter_config.json as PEFT 0.18.1 writes it. `targetPaths` are the adapted module paths:
 * PEFT resolves 'all-linear' to them before saving.
 */
export function toPeftConfig(c: LoraConfig, targetPaths: string[]): Record<string, unknown> {
  const out: Raw = {};
  for (const field of Object.keys(FIELDS).sort()) {
    const rule = FIELDS[field]!;
    if (typeof rule === 'object') out[field] = rule.only[0];
  }
  const fields: Raw = {
    ...out,
    auto_mapping: null,
    base_model_name_or_path: c.baseModelNameOrPath ?? null,
    corda_config: null,
    eva_config: null,
    inference_mode: true,
    megatron_core: 'megatron.core',
    peft_version: '0.18.1',
    qalora_group_size: 16,
    revision: null,
    task_type: 'CAUSAL_LM',
    peft_type: 'LORA',
    r: c.r,
    lora_alpha: c.loraAlpha,
    lora_dropout: c.loraDropout,
    target_modules: c.targetModules === 'all-linear' ? targetPaths : c.targetModules,
    exclude_modules: c.excludeModules,
    layers_to_transform: c.layersToTransform,
    layers_pattern: c.layersPattern,
    rank_pattern: c.rankPattern,
    alpha_pattern: c.alphaPattern,
    use_rslora: c.useRslora,
    use_dora: c.useDora,
    bias: c.bias,
    modules_to_save: c.modulesToSave,
    init_lora_weights: c.init === 'kaiming' ? true : c.init,
  };
  // PEFT writes the keys sorted.
  return Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : 1)));
}
