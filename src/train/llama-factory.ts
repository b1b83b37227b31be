/**
 * LLaMA-Factory's YAML keys where they differ from loraforge's, so its SFT configs run as they
 * are: renamed keys become loraforge's, keys with nothing to do here (workers, caches, logging
 * toggles) are accepted when their value asks for nothing loraforge lacks, and features loraforge
 * does not have are refused by name rather than silently ignored.
 */
import { LoraforgeError } from '../util/errors.ts';
import type { OptionLayer } from '../util/options.ts';

type Rule =
  /** Same meaning under loraforge's key `to` (the value translated where spelled differently). */
  | { to: string; value?: (v: unknown) => unknown }
  /** Nothing to do in loraforge when `accepts(value)`; any other value is refused. */
  | { accepts: (v: unknown) => boolean; expected: string }
  /** A feature loraforge does not have. */
  | { unsupported: string };

const isTrue = (v: unknown) => v === true || v === 'true';
const anything = () => true;
const only =
  (...values: unknown[]) =>
  (v: unknown) =>
    values.includes(v);
const unsupported = (what: string): Rule => ({ unsupported: what });

const RULES: Record<string, Rule> = {
  model_name_or_path: { to: 'model' },
  lora_target: { to: 'lora_target', value: (v) => (v === 'all' ? 'all-linear' : v) },
  // bf16 is loraforge's own key, with the same meaning (mixed precision). fp16 autocast has no
  // counterpart: it loads the model in its dtype, which here is the storage dtype.
  fp16: { to: 'dtype', value: (v) => (isTrue(v) ? 'f16' : undefined) },
  stage: {
    accepts: only('sft'),
    expected: 'sft (supervised fine-tuning is what loraforge trains)',
  },
  do_train: { accepts: isTrue, expected: 'true' },
  do_eval: { accepts: anything, expected: '' },
  eval_strategy: { accepts: only('steps', 'no'), expected: 'steps (set eval_steps)' },
  optim: { accepts: only('adamw_torch'), expected: 'adamw_torch (the only optimizer)' },
  plot_loss: { accepts: anything, expected: '' }, // the loss is always plotted
  overwrite_cache: { accepts: anything, expected: '' }, // nothing is cached
  preprocessing_num_workers: { accepts: anything, expected: '' },
  dataloader_num_workers: { accepts: anything, expected: '' },
  ddp_timeout: { accepts: anything, expected: '' },
  flash_attn: { accepts: anything, expected: '' }, // loraforge's attention is its own kernel
  trust_remote_code: { accepts: anything, expected: '' }, // no model code is ever run
  include_num_input_tokens_seen: { accepts: anything, expected: '' },
  adapter_name_or_path: unsupported('continuing from an existing adapter'),
  // QLoRA: bitsandbytes' 4-bit (NF4 unless quantization_type says fp4) or 8-bit base.
  quantization_bit: {
    to: 'quantization',
    value: (v) => (Number(v) === 4 ? 'nf4' : Number(v) === 8 ? 'int8' : `${String(v)}-bit`),
  },
  quantization_type: { to: 'quantization' },
  double_quantization: { to: 'bnb_4bit_use_double_quant' },
  quantization_method: {
    accepts: only('bitsandbytes', 'bnb'),
    expected: 'bitsandbytes (the formats loraforge implements)',
  },
  deepspeed: unsupported('DeepSpeed'),
  pissa_init: { to: 'lora_init', value: (v) => (isTrue(v) ? 'pissa' : undefined) },
  pissa_iter: {
    accepts: only(-1, '-1'),
    expected: "-1 (loraforge's PiSSA uses the exact SVD, not PEFT's fast iterations)",
  },
  pissa_convert: unsupported('converting a PiSSA adapter to plain LoRA at save'),
  use_unsloth: unsupported('Unsloth'),
  neftune_noise_alpha: unsupported('NEFTune'),
  loraplus_lr_ratio: unsupported('LoRA+'),
  max_samples: unsupported('max_samples (cut the dataset file instead)'),
  eval_dataset: unsupported('a separate eval_dataset (use val_size)'),
  do_predict: unsupported('prediction runs (use loraforge eval)'),
};

/** A layer with LLaMA-Factory's spellings turned into loraforge's (or a clear refusal). */
export function fromLlamaFactory(layer: OptionLayer): OptionLayer {
  const values: Record<string, unknown> = {};
  for (const [rawKey, value] of Object.entries(layer.values)) {
    if (value === undefined || value === null) continue; // unset, as resolveOptions reads it
    const rule = RULES[rawKey.replaceAll('-', '_')];
    if (!rule) {
      values[rawKey] = value;
    } else if ('to' in rule) {
      const translated = rule.value ? rule.value(value) : value;
      if (translated !== undefined) values[rule.to] = translated;
    } else if ('accepts' in rule) {
      if (!rule.accepts(value)) {
        throw new LoraforgeError(
          `${layer.source}: ${rawKey}: ${JSON.stringify(value)} is not supported`,
          `loraforge takes ${rawKey}: ${rule.expected}`,
        );
      }
    } else if (value !== false) {
      throw new LoraforgeError(
        `${layer.source}: ${rawKey} is not supported: loraforge has no ${rule.unsupported}`,
        `remove ${rawKey} from the config`,
      );
    }
  }
  return { values, source: layer.source };
}
