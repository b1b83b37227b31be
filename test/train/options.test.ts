/**
 * One declaration per training option (src/train/config.ts TRAIN_OPTIONS, with the LoRA and
 * TrainingArguments tables it joins): defaults, flags, YAML validation with nearest-key hints,
 * LLaMA-Factory's spellings, and the whole config checked before anything loads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_LORA_CONFIG, LORA_OPTIONS } from '../../src/peft/config.ts';
import { makeTrainingArguments, TRAINING_ARGUMENTS } from '../../src/train/arguments.ts';
import { resolveTrainConfig, TRAIN_OPTIONS } from '../../src/train/config.ts';
import { editDistance, nearestKey } from '../../src/util/options.ts';

const REQUIRED = { model: 'm', dataset: 'd.json' };
const resolve = (values: Record<string, unknown>) =>
  resolveTrainConfig([{ values: { ...REQUIRED, ...values }, source: 'run.yaml' }]);

test('defaults come from the one table: config, TrainingArguments and LoraConfig agree', () => {
  const config = resolve({});
  const args = makeTrainingArguments();
  assert.equal(config.save_total_limit, 0, 'HF keeps every checkpoint unless told (None)');
  assert.equal(args.saveTotalLimit, 0);
  for (const [key, spec] of Object.entries(TRAINING_ARGUMENTS)) {
    const camel = key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    assert.equal((args as Record<string, unknown>)[camel], spec.default, key);
    assert.equal((config as Record<string, unknown>)[key], spec.default, key);
  }
  assert.equal(DEFAULT_LORA_CONFIG.r, LORA_OPTIONS.lora_rank.default);
  assert.equal(DEFAULT_LORA_CONFIG.loraAlpha, config.lora_alpha);
  assert.equal(DEFAULT_LORA_CONFIG.loraDropout, config.lora_dropout);
  for (const [key, spec] of Object.entries(TRAIN_OPTIONS)) assert.ok(spec.help, `${key} has help`);
});

test('flags and YAML share keys: dashes, strings from the command line, later layers win', () => {
  const config = resolveTrainConfig([
    { values: { ...REQUIRED, lora_rank: 4, packing: true }, source: 'run.yaml' },
    {
      values: { 'lora-rank': '16', packing: 'false', set: 'name=小李,author=小张' },
      source: 'flags',
    },
  ]);
  assert.equal(config.lora_rank, 16);
  assert.equal(config.packing, false);
  const unset = resolve({ resume_from_checkpoint: null, learning_rate: null });
  assert.equal(unset.resume_from_checkpoint, undefined, 'YAML null leaves a key unset');
  assert.equal(unset.learning_rate, 2e-4);
  assert.deepEqual(config.set, { name: '小李', author: '小张' });
});

test('an unknown key names the nearest one (edit distance)', () => {
  assert.equal(editDistance('lora_rnak', 'lora_rank'), 2);
  assert.equal(nearestKey('learnig_rate', Object.keys(TRAIN_OPTIONS)), 'learning_rate');
  assert.equal(nearestKey('colour', Object.keys(TRAIN_OPTIONS)), undefined);
  assert.throws(
    () => resolve({ lora_rnak: 8 }),
    (err: Error & { hint?: string }) =>
      /run\.yaml: unknown key "lora_rnak"/.test(err.message) &&
      err.hint === 'did you mean lora_rank?',
  );
  assert.throws(
    () => resolve({ 'num-train-epoch': 3 }),
    (err: Error & { hint?: string }) => err.hint === 'did you mean num_train_epochs?',
  );
});

test('types, ranges and choices are checked for every key before anything loads', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ lora_rank: 0 }, /run\.yaml: lora_rank must be >= 1 \(got 0\)/],
    [{ lora_dropout: 1 }, /lora_dropout must be < 1/],
    [{ learning_rate: 'fast' }, /learning_rate must be a number/],
    [{ cutoff_len: 12.5 }, /cutoff_len must be a whole number/],
    [{ dtype: 'BF16' }, /dtype must be one of auto, f32, bf16, f16 \(got "BF16"\)/],
    [{ template: 'qwen' }, /template must be one of tutorial, chatml, model/],
    [{ lr_scheduler_type: 'step' }, /lr_scheduler_type must be one of linear, cosine/],
    [{ finetuning_type: 'freeze' }, /finetuning_type must be one of lora, full/],
    [{ lora_init: 'loftq' }, /lora_init must be one of kaiming, gaussian, pissa, olora/],
    [{ lora_target: 'q_prj,v_proj' }, /target_modules \["q_prj"\] are not projections/],
    [{ columns: { answer: 'a' } }, /column mapping: unknown field "answer"/],
    [{ packing: 'yes' }, /packing must be true or false/],
  ];
  for (const [values, pattern] of bad) assert.throws(() => resolve(values), pattern);
  assert.throws(
    () => resolveTrainConfig([{ values: { dataset: 'd.json' }, source: 'run.yaml' }]),
    /missing "model"/,
  );
});

test("LLaMA-Factory's SFT YAML keys are accepted, and its other features refused by name", () => {
  const config = resolveTrainConfig([
    {
      source: 'llamafactory.yaml',
      values: {
        model_name_or_path: 'Qwen/Qwen2-0.5B-Instruct',
        stage: 'sft',
        do_train: true,
        finetuning_type: 'lora',
        lora_target: 'all',
        dataset: 'identity.json',
        dataset_dir: 'data',
        template: 'chatml',
        cutoff_len: 1024,
        overwrite_cache: true,
        preprocessing_num_workers: 16,
        output_dir: 'saves/qwen2/lora/sft',
        logging_steps: 10,
        save_steps: 500,
        plot_loss: true,
        per_device_train_batch_size: 1,
        gradient_accumulation_steps: 8,
        learning_rate: 1e-4,
        num_train_epochs: 3.0,
        lr_scheduler_type: 'cosine',
        warmup_ratio: 0.1,
        bf16: true,
        ddp_timeout: 180000000,
        report_to: 'none',
      },
    },
  ]);
  assert.equal(config.model, 'Qwen/Qwen2-0.5B-Instruct');
  assert.equal(config.lora_target, 'all-linear');
  assert.equal(config.bf16, true, "bf16 is loraforge's own key: mixed precision");
  assert.equal(config.dataset_dir, 'data');
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ stage: 'dpo' }, /stage: "dpo" is not supported/],
    [{ quantization_bit: 3 }, /quantization must be one of none, nf4, fp4, int8 \(got "3-bit"\)/],
    [{ quantization_method: 'gptq' }, /quantization_method: "gptq" is not supported/],
    [{ quantization_bit: 4, finetuning_type: 'full' }, /a quantized base is frozen/],
    [{ deepspeed: 'ds_z3.json' }, /deepspeed is not supported/],
    [{ pissa_init: true, pissa_iter: 16 }, /pissa_iter/],
    [{ pissa_convert: true }, /pissa_convert is not supported/],
    [{ optim: 'sgd' }, /optim: "sgd" is not supported/],
  ];
  for (const [values, pattern] of refused) assert.throws(() => resolve(values), pattern);
  assert.equal(resolve({ use_dora: true }).use_dora, true, 'DoRA is a LoRA option');
  const qlora = resolve({ quantization_bit: 4, double_quantization: true });
  assert.equal(qlora.quantization, 'nf4', "QLoRA: LLaMA-Factory's 4-bit is NF4");
  assert.equal(qlora.bnb_4bit_use_double_quant, true);
  assert.equal(resolve({ quantization_bit: 8 }).quantization, 'int8');
  assert.equal(resolve({ pissa_init: true }).lora_init, 'pissa');
  assert.equal(
    resolve({ pissa_convert: false }).lora_rank,
    8,
    'a feature switched off is harmless',
  );
  assert.equal(resolve({ quantization_bit: null, stage: null }).lora_rank, 8, 'so is an unset one');
});
