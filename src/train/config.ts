/**
 * The `loraforge train` configuration: one flat set of snake_case keys (as in LLaMA-Factory's
 * YAML files) that a config file, command-line flags (`--lora-rank 16`) and the demo all share.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { LoraforgeError } from '../util/errors.ts';

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'map';

interface KeySpec {
  kind: Kind;
  help: string;
  default?: unknown;
}

/** Every key, its type, default and one-line help (used for validation and `--help`). */
export const TRAIN_KEYS = {
  model: {
    kind: 'string',
    help: 'model folder or Hugging Face id (e.g. Qwen/Qwen2-0.5B-Instruct)',
  },
  dataset: { kind: 'string', help: 'dataset file(s), comma-separated (.json, .jsonl, .csv)' },
  dataset_format: { kind: 'string', help: 'alpaca | sharegpt | openai | auto', default: 'auto' },
  columns: { kind: 'map', help: 'column mapping, e.g. instruction=question,output=answer' },
  set: {
    kind: 'map',
    help: 'placeholder values for {{name}} in the data, e.g. name=小李,author=小张',
  },
  template: {
    kind: 'string',
    help: 'prompt template: tutorial | chatml | model',
    default: 'tutorial',
  },
  cutoff_len: { kind: 'integer', help: 'truncate examples to this many tokens', default: 256 },
  val_size: { kind: 'number', help: 'validation share (fraction) or count', default: 0.1 },
  train_on_prompt: { kind: 'boolean', help: 'also learn the prompt tokens', default: false },
  packing: { kind: 'boolean', help: 'pack several examples per row', default: false },
  group_by_length: { kind: 'boolean', help: 'batch examples of similar length', default: false },
  finetuning_type: { kind: 'string', help: 'lora | full', default: 'lora' },
  lora_rank: { kind: 'integer', help: 'LoRA rank r', default: 8 },
  lora_alpha: { kind: 'number', help: 'LoRA alpha (scaling = alpha / r)', default: 16 },
  lora_dropout: { kind: 'number', help: 'dropout on the LoRA path', default: 0.05 },
  lora_target: {
    kind: 'string',
    help: 'all-linear, or comma-separated module names',
    default: 'all-linear',
  },
  use_rslora: { kind: 'boolean', help: 'scale by alpha / sqrt(r)', default: false },
  lora_init: { kind: 'string', help: 'kaiming (PEFT default) | gaussian', default: 'kaiming' },
  dtype: {
    kind: 'string',
    help: 'storage of frozen weights: auto | f32 | bf16 | f16',
    default: 'auto',
  },
  output_dir: {
    kind: 'string',
    help: 'where the adapter, checkpoints, metrics and plots go',
    default: 'runs/lora',
  },
  num_train_epochs: { kind: 'number', help: 'epochs', default: 3 },
  max_steps: { kind: 'integer', help: 'optimizer steps (overrides epochs when > 0)', default: -1 },
  per_device_train_batch_size: { kind: 'integer', help: 'rows per micro-batch', default: 4 },
  per_device_eval_batch_size: { kind: 'integer', help: 'rows per evaluation batch', default: 8 },
  gradient_accumulation_steps: {
    kind: 'integer',
    help: 'micro-batches per optimizer step',
    default: 1,
  },
  learning_rate: { kind: 'number', help: 'peak learning rate', default: 2e-4 },
  weight_decay: { kind: 'number', help: 'AdamW weight decay', default: 0 },
  adam_beta1: { kind: 'number', help: 'AdamW beta1', default: 0.9 },
  adam_beta2: { kind: 'number', help: 'AdamW beta2', default: 0.999 },
  adam_epsilon: { kind: 'number', help: 'AdamW epsilon', default: 1e-8 },
  max_grad_norm: { kind: 'number', help: 'gradient clipping norm (0 = off)', default: 1 },
  lr_scheduler_type: {
    kind: 'string',
    help: 'linear | cosine | constant | constant_with_warmup',
    default: 'cosine',
  },
  warmup_steps: { kind: 'integer', help: 'warmup steps', default: 0 },
  warmup_ratio: { kind: 'number', help: 'warmup as a share of all steps', default: 0 },
  logging_steps: { kind: 'integer', help: 'log every N steps', default: 10 },
  eval_steps: { kind: 'integer', help: 'evaluate every N steps (0 = at the end)', default: 0 },
  save_steps: {
    kind: 'integer',
    help: 'checkpoint every N steps (0 = only at the end)',
    default: 0,
  },
  save_total_limit: { kind: 'integer', help: 'keep at most N checkpoints (0 = all)', default: 3 },
  resume_from_checkpoint: { kind: 'string', help: 'a checkpoint folder, or "latest"' },
  seed: { kind: 'integer', help: 'random seed (init, split, shuffling, dropout)', default: 42 },
  threads: { kind: 'integer', help: 'CPU threads (default: all cores)' },
  device: { kind: 'string', help: 'cpu | webgpu | auto', default: 'auto' },
} satisfies Record<string, KeySpec>;

/** A training configuration key. */
export type TrainKey = keyof typeof TRAIN_KEYS;

/** A full training configuration (the keys of `loraforge train`'s YAML file). */
export interface TrainConfig {
  model: string;
  dataset: string;
  dataset_format: string;
  columns?: Record<string, string>;
  set?: Record<string, string>;
  template: string;
  cutoff_len: number;
  val_size: number;
  train_on_prompt: boolean;
  packing: boolean;
  group_by_length: boolean;
  finetuning_type: 'lora' | 'full';
  lora_rank: number;
  lora_alpha: number;
  lora_dropout: number;
  lora_target: string;
  use_rslora: boolean;
  lora_init: string;
  dtype: string;
  output_dir: string;
  num_train_epochs: number;
  max_steps: number;
  per_device_train_batch_size: number;
  per_device_eval_batch_size: number;
  gradient_accumulation_steps: number;
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  max_grad_norm: number;
  lr_scheduler_type: string;
  warmup_steps: number;
  warmup_ratio: number;
  logging_steps: number;
  eval_steps: number;
  save_steps: number;
  save_total_limit: number;
  resume_from_checkpoint?: string;
  seed: number;
  threads?: number;
  device: string;
}

/** "a=1,b=2" (flags) or a YAML mapping → string map. */
function toMap(value: unknown, key: string, source: string): Record<string, string> {
  if (typeof value === 'string') {
    const out: Record<string, string> = {};
    for (const part of value.split(',').filter(Boolean)) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new LoraforgeError(`${source}: ${key} "${part}" is not NAME=VALUE`);
      out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
    return out;
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
  }
  throw new LoraforgeError(`${source}: ${key} must be a mapping (NAME=VALUE,...)`);
}

function coerce(key: TrainKey, value: unknown, source: string): unknown {
  const { kind } = TRAIN_KEYS[key] as KeySpec;
  const bad = (what: string) =>
    new LoraforgeError(`${source}: ${key} must be ${what} (got ${JSON.stringify(value)})`);
  switch (kind) {
    case 'string':
      if (typeof value === 'number' || typeof value === 'boolean') return String(value);
      if (typeof value !== 'string') throw bad('a string');
      return value;
    case 'number':
    case 'integer': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw bad('a number');
      if (kind === 'integer' && !Number.isInteger(n)) throw bad('a whole number');
      return n;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1') return true;
      if (value === 'false' || value === '0') return false;
      throw bad('true or false');
    case 'map':
      return toMap(value, key, source);
  }
}

/** Validates raw key/values (from YAML and flags, later ones winning) into a full config. */
export function resolveTrainConfig(
  layers: { values: Record<string, unknown>; source: string }[],
): TrainConfig {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(TRAIN_KEYS) as [TrainKey, KeySpec][]) {
    if (spec.default !== undefined) out[key] = spec.default;
  }
  for (const { values, source } of layers) {
    for (const [rawKey, value] of Object.entries(values)) {
      if (value === undefined) continue;
      const key = rawKey.replaceAll('-', '_') as TrainKey;
      if (!(key in TRAIN_KEYS)) {
        const known = Object.keys(TRAIN_KEYS);
        const near = known.find((k) => k.includes(key) || key.includes(k));
        throw new LoraforgeError(
          `${source}: unknown key "${rawKey}"`,
          near ? `did you mean ${near}?` : 'run `loraforge train --help` for the keys',
        );
      }
      out[key] = coerce(key, value, source);
    }
  }
  for (const required of ['model', 'dataset'] as const) {
    if (!out[required]) {
      throw new LoraforgeError(
        `missing "${required}"`,
        `set it in the config file or pass --${required}`,
      );
    }
  }
  if (out.finetuning_type !== 'lora' && out.finetuning_type !== 'full') {
    throw new LoraforgeError(
      `finetuning_type must be lora or full (got ${JSON.stringify(out.finetuning_type)})`,
    );
  }
  return out as unknown as TrainConfig;
}

/** Reads a YAML (or JSON) config file as key/values. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new LoraforgeError(`${path}: cannot read the config file`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new LoraforgeError(`${path}: invalid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new LoraforgeError(`${path}: expected a mapping of keys to values`);
  }
  return value as Record<string, unknown>;
}
