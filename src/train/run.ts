/**
 * The tutorial's whole pipeline as one call: load the model, freeze it, add LoRA (or train it all),
 * prepare the dataset with the chosen template, train, save the adapter with its template, plot.
 */
import { gemmPrecisionOf } from '../engine/precision-options.ts';
import { selectBackend } from '../engine/select-backend.ts';
import { DataLoader, padIdOf } from '../data/loader.ts';
import { loadDataset } from '../data/dataset.ts';
import type { DatasetSource } from '../data/dataset-info.ts';
import { createTemplate } from '../data/templates.ts';
import { resolveModel } from '../io/hub.ts';
import { loadTokenizer } from '../io/tokenizer.ts';
import { loadDecoderConfig, loadModel } from '../models/load.ts';
import { quantizationFromOptions } from '../models/quantization-options.ts';
import { LoraAdapter, trainableParametersReport } from '../peft/adapter.ts';
import { baseParameterCountOf } from '../models/shapes.ts';
import { loraConfigFromOptions } from '../peft/config.ts';
import { LoraforgeError } from '../util/errors.ts';
import { formatCount } from '../util/format.ts';
import { trainingArgumentsOf } from './arguments.ts';
import { datasetFiles, frozenWeightDType, type TrainConfig } from './config.ts';
import type { MetricsRecord } from './metrics.ts';
import { prepareOutputDir, runFingerprint } from './output-dir.ts';
import { defaultLoggingDir, TensorBoardWriter } from './tensorboard.ts';
import { trainInFolder, type TrainResult } from './train-in-folder.ts';
import { Trainer } from './trainer.ts';

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

/** `report_to`: HF's names; only TensorBoard is written here, anything else is refused. */
function openReporting(cfg: TrainConfig): TensorBoardWriter | null {
  const targets = cfg.report_to.split(',').map((t) => t.trim().toLowerCase());
  const unknown = targets.filter((t) => t !== 'none' && t !== 'tensorboard');
  if (unknown.length) {
    throw new LoraforgeError(
      `report_to ${unknown.join(', ')}: not supported`,
      'use report_to: tensorboard (or none); metrics.jsonl and loss.png are always written',
    );
  }
  if (!targets.includes('tensorboard')) return null;
  return new TensorBoardWriter(cfg.logging_dir ?? defaultLoggingDir(cfg.output_dir));
}

/** Runs a whole training configuration: loads the model and data, adds LoRA (or trains fully), trains, writes the adapter to `output_dir`. */
export async function runTraining(cfg: TrainConfig, hooks: RunHooks = {}): Promise<RunResult> {
  const log = hooks.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Before the model is resolved (which may mean a download): a wrong name fails at once.
  const files = datasetFiles(cfg);
  // Then, before any slow load: a second trainer on this folder, or a folder of other things.
  const { lock, resumeFrom } = prepareOutputDir(cfg);
  try {
    return await trainIn(cfg, files, resumeFrom, log, hooks);
  } finally {
    lock.release();
  }
}

async function trainIn(
  cfg: TrainConfig,
  files: (string | DatasetSource)[],
  resumeFrom: string | undefined,
  log: (line: string) => void,
  hooks: RunHooks,
): Promise<RunResult> {
  const tensorboard = openReporting(cfg);
  const backend = await selectBackend({
    device: cfg.device,
    threads: cfg.threads,
    gemmPrecision: gemmPrecisionOf(cfg),
  });
  const modelDir = await resolveModel(cfg.model);
  const tokenizer = await loadTokenizer(modelDir);
  const template = createTemplate(cfg.template, tokenizer);
  const data = await loadDataset({
    files,
    format: cfg.dataset_format,
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

  // Printed once the data is known good, so a data error stays the only line.
  log(`device: ${backend.describe()}`);
  const quantization = quantizationFromOptions(cfg);
  const model = loadModel(modelDir, {
    dtype: frozenWeightDType(cfg, loadDecoderConfig(modelDir)),
    quantization,
  });
  if (quantization) {
    const absmax = quantization.doubleQuant ? ', double-quantized absmax' : '';
    log(`frozen base: decoder projections quantized to ${quantization.type}${absmax} (QLoRA)`);
  }
  let adapter: LoraAdapter | null = null;
  if (cfg.finetuning_type === 'lora') {
    adapter = LoraAdapter.create(model, loraConfigFromOptions(cfg, cfg.model), cfg.seed);
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
  const args = { ...trainingArgumentsOf(cfg), resumeFromCheckpoint: resumeFrom };
  const trainer = new Trainer({ model, adapter, train: loader, evalBatches, args });
  if (tensorboard) log(`tensorboard: ${tensorboard.path}`);
  try {
    const result = await trainInFolder(trainer, {
      adapter,
      adapterMeta: { template: template.toJSON(), baseModel: cfg.model, trainConfig: cfg },
      baseModelDir: modelDir,
      progress: hooks.progress,
      onLog: (record) => {
        tensorboard?.write(record);
        hooks.onLog?.(record);
      },
      log,
      runConfig: runFingerprint(cfg),
    });
    return { ...result, trainExamples: trainStats.examples, validationExamples: valStats.examples };
  } finally {
    adapter?.dispose();
    model.dispose();
  }
}
