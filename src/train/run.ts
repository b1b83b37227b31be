/**
 * The tutorial's whole pipeline as one call: load the model, freeze it, add LoRA (or train it all),
 * prepare the dataset with the chosen template, train, save the adapter with its template, plot.
 */
import { selectBackend, type DeviceName } from '../engine/select-backend.ts';
import { DataLoader, padIdOf } from '../data/loader.ts';
import { loadDataset } from '../data/dataset.ts';
import { parseDatasetFormat } from '../data/formats.ts';
import { createTemplate } from '../data/templates.ts';
import { resolveModel } from '../io/hub.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import type { DecoderConfig } from '../models/config.ts';
import { loadDecoderConfig, loadModel, type WeightDType } from '../models/load.ts';
import { LoraAdapter, trainableParametersReport } from '../peft/adapter.ts';
import { autoWeightDType, baseParameterCountOf } from '../models/shapes.ts';
import { makeLoraConfig } from '../peft/config.ts';
import { LoraforgeError } from '../util/errors.ts';
import { formatCount } from '../util/format.ts';
import { makeTrainingArguments } from './arguments.ts';
import type { TrainConfig } from './config.ts';
import type { MetricsRecord } from './metrics.ts';
import type { ScheduleName } from './schedule.ts';
import { Trainer, type TrainResult } from './trainer.ts';

/** Where a training run reports: log lines, metrics records, the progress bar. */
export interface RunHooks {
  /** Receives each log line (default: stderr). */
  log?: (line: string) => void;
  /** Receives each metrics record (loss, learning rate, eval loss...) as it is written. */
  onLog?: (record: MetricsRecord) => void;
  progress?: boolean;
}

/** The Trainer's result plus the dataset sizes. */
export interface RunResult extends TrainResult {
  trainExamples: number;
  validationExamples: number;
}

/** f32 keeps small models exact; bf16 halves the frozen weights of big ones. */
/** Full fine-tuning trains every weight, so it needs them in f32. */
function chooseDType(cfg: TrainConfig, config: DecoderConfig): WeightDType {
  if (cfg.finetuning_type === 'full') return 'f32';
  if (cfg.dtype === 'f32' || cfg.dtype === 'bf16' || cfg.dtype === 'f16') return cfg.dtype;
  if (cfg.dtype !== 'auto')
    throw new LoraforgeError(`dtype must be auto, f32, bf16 or f16 (got ${cfg.dtype})`);
  return autoWeightDType(config);
}

/** Runs a whole training configuration: loads the model and data, adds LoRA (or trains fully), trains, writes the adapter to `output_dir`. */
export async function runTraining(cfg: TrainConfig, hooks: RunHooks = {}): Promise<RunResult> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  await selectBackend({ device: cfg.device as DeviceName, threads: cfg.threads });
  const modelDir = await resolveModel(cfg.model);
  const tokenizer = await loadTokenizer(modelDir);
  const template = createTemplate(cfg.template, tokenizer);
  const data = await loadDataset({
    files: cfg.dataset
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean),
    format: cfg.dataset_format === 'auto' ? 'auto' : parseDatasetFormat(cfg.dataset_format),
    columns: cfg.columns,
    template,
    cutoffLen: cfg.cutoff_len,
    trainOnPrompt: cfg.train_on_prompt,
    valSize: cfg.val_size,
    seed: cfg.seed,
    placeholders: cfg.set,
  });
  const { train: trainStats, validation: valStats } = data.stats;
  log(
    `dataset: ${trainStats.examples} train / ${valStats.examples} validation examples, ` +
      `${formatCount(trainStats.supervisedTokens)} supervised tokens` +
      (trainStats.dropped
        ? `, ${trainStats.dropped} dropped (nothing left to learn after cutoff_len ${cfg.cutoff_len})`
        : ''),
  );

  const model = loadModel(modelDir, { dtype: chooseDType(cfg, loadDecoderConfig(modelDir)) });
  let adapter: LoraAdapter | null = null;
  if (cfg.finetuning_type === 'lora') {
    const target =
      cfg.lora_target === 'all-linear'
        ? 'all-linear'
        : cfg.lora_target.split(',').map((s) => s.trim());
    const loraConfig = makeLoraConfig({
      r: cfg.lora_rank,
      loraAlpha: cfg.lora_alpha,
      loraDropout: cfg.lora_dropout,
      targetModules: target,
      useRslora: cfg.use_rslora,
      init: cfg.lora_init === 'gaussian' ? 'gaussian' : 'kaiming',
      baseModelNameOrPath: cfg.model,
    });
    adapter = LoraAdapter.create(model, loraConfig, cfg.seed);
    adapter.attach(model);
    log(trainableParametersReport(model, adapter));
  } else {
    log(
      `full fine-tuning: ${formatCount(baseParameterCountOf(model.config))} trainable parameters`,
    );
  }

  const padId = padIdOf(tokenizer);
  const loader = new DataLoader(data.train, {
    batchSize: cfg.per_device_train_batch_size,
    padId,
    seed: cfg.seed,
    groupByLength: cfg.group_by_length,
    packing: cfg.packing,
    packLength: cfg.packing ? cfg.cutoff_len : undefined,
  });
  const evalBatches =
    data.validation.length > 0
      ? () =>
          new DataLoader(data.validation, {
            batchSize: cfg.per_device_eval_batch_size,
            padId,
            shuffle: false,
          }).restOfEpoch()
      : undefined;
  const args = makeTrainingArguments({
    outputDir: cfg.output_dir,
    numTrainEpochs: cfg.num_train_epochs,
    maxSteps: cfg.max_steps,
    gradientAccumulationSteps: cfg.gradient_accumulation_steps,
    learningRate: cfg.learning_rate,
    weightDecay: cfg.weight_decay,
    adamBeta1: cfg.adam_beta1,
    adamBeta2: cfg.adam_beta2,
    adamEpsilon: cfg.adam_epsilon,
    maxGradNorm: cfg.max_grad_norm,
    lrSchedulerType: cfg.lr_scheduler_type as ScheduleName,
    warmupSteps: cfg.warmup_steps,
    warmupRatio: cfg.warmup_ratio,
    loggingSteps: cfg.logging_steps,
    evalSteps: cfg.eval_steps,
    saveSteps: cfg.save_steps,
    saveTotalLimit: cfg.save_total_limit,
    seed: cfg.seed,
    resumeFromCheckpoint:
      cfg.resume_from_checkpoint === 'latest' ? true : cfg.resume_from_checkpoint,
  });
  const trainer = new Trainer({
    model,
    adapter,
    train: loader,
    evalBatches,
    args,
    adapterMeta: { template: template.toJSON(), baseModel: cfg.model, trainConfig: cfg },
    baseModelDir: modelDir,
    progress: hooks.progress,
    onLog: hooks.onLog,
    log,
  });
  try {
    const result = await trainer.train();
    return { ...result, trainExamples: trainStats.examples, validationExamples: valStats.examples };
  } finally {
    adapter?.dispose();
    model.dispose();
  }
}
