/**
 * The Trainer's arguments, declared once with Hugging Face TrainingArguments' names, meaning and
 * defaults where they exist (loraforge's own choices are said so in their help). The YAML keys and
 * flags of `loraforge train` (config.ts) and the camelCase `TrainingArguments` of the library
 * both derive from this table.
 */
import {
  camel,
  option,
  resolveOptions,
  snake,
  type CamelKeys,
  type OptionValues,
} from '../util/options.ts';
import { SCHEDULE_NAMES } from './schedule.ts';

/** Every training argument: type, default, help and allowed values (YAML / HF names). */
export const TRAINING_ARGUMENTS = {
  output_dir: option.string('where the adapter, checkpoints, metrics and plots go', 'runs/lora'),
  overwrite_output_dir: option.boolean(
    'train into a non-empty output_dir (replaces an earlier run there, keeps other files)',
    false,
  ),
  num_train_epochs: option.number('epochs', 3, { above: 0 }),
  max_steps: option.integer('optimizer steps (overrides epochs when > 0)', -1),
  gradient_accumulation_steps: option.integer('micro-batches per optimizer step', 1, { min: 1 }),
  // loraforge: 2e-4 (LoRA's usual rate; HF's 5e-5 is for full fine-tuning).
  learning_rate: option.number('peak learning rate (loraforge default 2e-4, for LoRA)', 2e-4, {
    min: 0,
  }),
  weight_decay: option.number('AdamW weight decay', 0, { min: 0 }),
  adam_beta1: option.number('AdamW beta1', 0.9, { min: 0, below: 1 }),
  adam_beta2: option.number('AdamW beta2', 0.999, { min: 0, below: 1 }),
  adam_epsilon: option.number('AdamW epsilon', 1e-8, { min: 0 }),
  max_grad_norm: option.number('gradient clipping norm (0 = off)', 1, { min: 0 }),
  gradient_checkpointing: option.boolean(
    "keep only each decoder layer's input and recompute the layer in the backward pass (less activation memory, ~1/3 more compute)",
    false,
  ),
  // loraforge: cosine, as LLaMA-Factory's examples (HF: linear).
  lr_scheduler_type: option.choice('learning-rate schedule', SCHEDULE_NAMES, 'cosine'),
  warmup_steps: option.integer('warmup steps (> 0 overrides warmup_ratio)', 0, { min: 0 }),
  warmup_ratio: option.number('warmup as a share of all steps', 0, { min: 0, below: 1 }),
  // loraforge: 10 (HF: 500, too rare for the small runs this tool makes).
  logging_steps: option.integer('log every N steps', 10, { min: 1 }),
  eval_steps: option.integer('evaluate every N steps (0 = at the end)', 0, { min: 0 }),
  save_steps: option.integer('checkpoint every N steps (0 = only at the end)', 0, { min: 0 }),
  // HF's None = keep every checkpoint (LLaMA-Factory inherits it).
  save_total_limit: option.integer('keep at most N checkpoints (0 = all, as HF)', 0, { min: 0 }),
  resume_from_checkpoint: option.string('a checkpoint folder, or "latest"'),
  report_to: option.string('none | tensorboard (event files in logging_dir)', 'none'),
  logging_dir: option.string(
    'TensorBoard folder (default: <output_dir>/runs/<date>_<host>, as HF)',
  ),
  seed: option.integer('random seed (init, split, shuffling, dropout)', 42, { min: 0 }),
};

/** Training arguments under their YAML (snake_case) names, as a resolved config holds them. */
export type TrainingArgumentValues = OptionValues<typeof TRAINING_ARGUMENTS>;

/**
 * What a Trainer runs with (HF TrainingArguments in camelCase). `resumeFromCheckpoint` is a
 * checkpoint folder or `'latest'` (the newest one in `outputDir`); only the Node shell
 * (`trainInFolder`) reads it, as it is the one that reads files.
 */
export type TrainingArguments = CamelKeys<TrainingArgumentValues>;

/** Every argument checked against the table; missing ones take their defaults. */
export function makeTrainingArguments(partial: Partial<TrainingArguments> = {}): TrainingArguments {
  const values = Object.fromEntries(
    Object.entries(partial).map(([key, value]) => [snake(key), value]),
  );
  return trainingArgumentsOf(
    resolveOptions(
      TRAINING_ARGUMENTS,
      [{ values, source: 'training arguments' }],
      'see TRAINING_ARGUMENTS for the names',
    ),
  );
}

/** The training arguments of a validated config (`loraforge train`'s keys), in camelCase. */
export function trainingArgumentsOf(values: TrainingArgumentValues): TrainingArguments {
  return Object.fromEntries(
    Object.keys(TRAINING_ARGUMENTS).map((key) => [
      camel(key),
      values[key as keyof TrainingArgumentValues],
    ]),
  ) as TrainingArguments;
}
