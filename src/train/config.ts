/**
 * The `loraforge train` configuration: one flat set of snake_case keys (as in LLaMA-Factory's
 * YAML files) that a config file, command-line flags (`--lora-rank 16`) and the demo all share,
 * declared once in `TRAIN_OPTIONS`.
 */
import { readTextChecked, READ_LIMITS } from '../io/safe-read.ts';
import { parse as parseYaml } from 'yaml';
import { resolveDatasets, type DatasetSource } from '../data/dataset-info.ts';
import { DATASET_FORMATS, parseColumnMapping } from '../data/formats.ts';
import { TEMPLATE_NAMES } from '../data/templates.ts';
import type { DecoderConfig } from '../models/config.ts';
import { QUANTIZATION_OPTIONS } from '../models/quantization-options.ts';
import { autoWeightDType } from '../models/shapes.ts';
import { LORA_OPTIONS, loraConfigFromOptions } from '../peft/config.ts';
import { LoraforgeError } from '../util/errors.ts';
import { option, resolveOptions, type OptionLayer, type OptionValues } from '../util/options.ts';
import { TRAINING_ARGUMENTS } from './arguments.ts';
import { fromLlamaFactory } from './llama-factory.ts';
import { DEVICE_NAMES } from '../engine/devices.ts';
import { PRECISION_OPTIONS } from '../engine/precision-options.ts';

/** The data and model options of `loraforge train` (the training and LoRA ones live beside their code). */
const DATA_AND_MODEL_OPTIONS = {
  model: option.required(
    option.string('model folder or Hugging Face id (e.g. Qwen/Qwen2-0.5B-Instruct)'),
  ),
  dataset: option.required(option.string('dataset file(s), comma-separated (.json, .jsonl, .csv)')),
  dataset_dir: option.string(
    'folder of the dataset files, and of dataset_info.json for LLaMA-Factory dataset names',
    'data',
  ),
  dataset_format: option.choice('dataset format', ['auto', ...DATASET_FORMATS], 'auto'),
  columns: option.map('column mapping, e.g. instruction=question,output=answer'),
  set: option.map('placeholder values for {{name}} in the data, e.g. name=小李,author=小张'),
  template: option.choice('prompt template', TEMPLATE_NAMES, 'tutorial'),
  cutoff_len: option.integer('truncate examples to this many tokens', 256, { min: 1 }),
  val_size: option.number('validation share (fraction < 1) or count', 0.1, { min: 0 }),
  train_on_prompt: option.boolean('also learn the prompt tokens', false),
  packing: option.boolean('pack several examples per row', false),
  group_by_length: option.boolean('batch examples of similar length', false),
  finetuning_type: option.choice('what to train', ['lora', 'full'], 'lora'),
  dtype: option.choice('storage of frozen weights', ['auto', 'f32', 'bf16', 'f16'], 'auto'),
  ...PRECISION_OPTIONS,
  ...QUANTIZATION_OPTIONS,
  per_device_train_batch_size: option.integer('rows per micro-batch', 4, { min: 1 }),
  per_device_eval_batch_size: option.integer('rows per evaluation batch', 8, { min: 1 }),
  threads: option.integer('CPU threads (default: all cores)', undefined, { min: 1 }),
  device: option.choice('compute device', DEVICE_NAMES, 'auto'),
};

/** Every key of `loraforge train`: its type, default, one-line help and allowed values. */
export const TRAIN_OPTIONS = {
  ...DATA_AND_MODEL_OPTIONS,
  ...LORA_OPTIONS,
  ...TRAINING_ARGUMENTS,
};

/** A validated `loraforge train` configuration (YAML keys). */
export type TrainConfig = OptionValues<typeof TRAIN_OPTIONS>;

/**
 * The storage dtype of the frozen weights: f32 keeps small models exact; bf16 halves the frozen
 * weights of big ones, and is what bf16 mixed precision multiplies. Full fine-tuning trains every
 * weight, so it needs them in f32.
 */
export function frozenWeightDType(
  cfg: Pick<TrainConfig, 'finetuning_type' | 'dtype' | 'bf16'>,
  config: DecoderConfig,
): 'f32' | 'bf16' | 'f16' {
  if (cfg.finetuning_type === 'full') return 'f32';
  if (cfg.dtype !== 'auto') return cfg.dtype;
  return cfg.bf16 ? 'bf16' : autoWeightDType(config);
}

/**
 * Validates raw key/values (from YAML and flags, later layers winning) into a full config, before
 * anything is loaded: types, ranges and choices of every key, LLaMA-Factory's spellings
 * (llama-factory.ts), the column mapping and the LoRA target names.
 */
export function resolveTrainConfig(layers: readonly OptionLayer[]): TrainConfig {
  const config = resolveOptions(
    TRAIN_OPTIONS,
    layers.map(fromLlamaFactory),
    'run `loraforge train --help` for the keys',
  );
  if (config.columns) parseColumnMapping(config.columns);
  if (config.finetuning_type === 'lora') loraConfigFromOptions(config);
  if (config.finetuning_type === 'full' && config.quantization !== 'none') {
    throw new LoraforgeError(
      `finetuning_type full with quantization ${config.quantization}: a quantized base is frozen`,
      'QLoRA trains adapters: use finetuning_type lora, or quantization none',
    );
  }
  return config;
}

/**
 * The dataset entries as files to read: a file (as given, or inside `dataset_dir`), or a
 * LLaMA-Factory dataset name looked up in `<dataset_dir>/dataset_info.json` (dataset-info.ts).
 */
export function datasetFiles(config: TrainConfig): (string | DatasetSource)[] {
  const entries = config.dataset
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean);
  return resolveDatasets(entries, config.dataset_dir);
}

/** Reads a YAML (or JSON) config file as key/values. */
export function readConfigFile(path: string): Record<string, unknown> {
  const text = readTextChecked(path, { maxBytes: READ_LIMITS.config });
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
