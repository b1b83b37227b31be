/**
 * The Node shell around the Trainer (trainer.ts), what `loraforge train` runs: checkpoint folders
 * and the final adapter (or model) in `outputDir`, resuming from a checkpoint, metrics.jsonl, the
 * loss plot, Ctrl-C (stop after this step with a checkpoint) and a progress bar.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, bytesToF32, encodeSafetensors } from '../io/safetensors.ts';
import type { NamedTensorData } from '../io/safetensors.ts';
import { publishFiles, writeFileAtomic } from '../io/atomic.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { keepUserReadme, writeAdapterFiles, type AdapterMeta } from '../peft/io.ts';
import { LoraforgeError } from '../util/errors.ts';
import { ProgressBar } from '../util/progress.ts';
import { latestCheckpoint, readCheckpoint, writeCheckpoint } from './checkpoint-files.ts';
import { MetricsWriter, readMetrics, truncateMetricsAfter, type MetricsRecord } from './metrics.ts';
import { writeLossPlot } from './plot.ts';
import type { Trainer, TrainerCheckpoint } from './trainer.ts';

/** What `trainInFolder` saves beside the weights, and where it reports. */
export interface TrainInFolderOptions {
  /** The adapter the trainer trains (null for full fine-tuning): saved in PEFT format. */
  adapter: LoraAdapter | null;
  /** Recorded beside the adapter (prompt template, base model, ...). */
  adapterMeta?: AdapterMeta;
  /** Full fine-tuning: the model folder whose config and tokenizer files the output copies. */
  baseModelDir?: string;
  /** Show a progress bar (default: when stderr is a terminal; plain lines otherwise). */
  progress?: boolean;
  /** Receives every metrics record (loss logs and evaluations). */
  onLog?: (record: MetricsRecord) => void;
  /** Status lines (resume, saves, stop). */
  log?: (message: string) => void;
  /** The settings that identify this run, recorded in every checkpoint (run_config). */
  runConfig?: Record<string, unknown>;
}

/** What a run in a folder produced. */
export interface TrainResult {
  globalStep: number;
  /** Mean training loss over the steps run in this call. */
  trainLoss: number;
  evalLoss?: number;
  /** Folder with the final adapter (or full model). */
  outputDir: string;
  metricsPath: string;
  plotPaths: string[];
  /** True when Ctrl-C stopped training early (a checkpoint was saved). */
  interrupted: boolean;
  /** The checkpoint saved when training was stopped early. */
  checkpoint?: string;
}

const METRICS_FILE = 'metrics.jsonl';
const FULL_MODEL_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
];

/**
 * Runs `trainer` with its outputs in `trainer.args.outputDir`: resumes first when
 * `resumeFromCheckpoint` is set, writes `checkpoint-N/` at each save point, the final weights at
 * the top of the folder (as HF's save_model), metrics.jsonl and loss.svg / loss.png.
 */
export async function trainInFolder(
  trainer: Trainer,
  opts: TrainInFolderOptions,
): Promise<TrainResult> {
  const { outputDir } = trainer.args;
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  mkdirSync(outputDir, { recursive: true });
  const metricsPath = join(outputDir, METRICS_FILE);
  const resumed = resumeIfAsked(trainer, opts.adapter !== null, log);
  const metrics = new MetricsWriter(metricsPath, { truncate: !resumed });
  const bar = new ProgressBar({
    total: trainer.totalSteps,
    label: 'train',
    unit: 'step',
    start: trainer.globalStep,
    stream: opts.progress === false ? { write: () => true } : undefined,
  });
  bar.update(trainer.globalStep);
  let stopCheckpoint: string | undefined;
  trainer.addCallback({
    onStep: ({ globalStep, loss, lr }) =>
      bar.update(globalStep, { loss: loss.toFixed(4), lr: lr.toExponential(2) }),
    onLog: (r) => {
      metrics.write(r);
      opts.onLog?.(r);
      if (r.eval_loss !== undefined)
        bar.log(
          `eval ${r.step}/${trainer.totalSteps}  eval_loss ${r.eval_loss.toFixed(4)}  eval_ppl ${Math.exp(r.eval_loss).toFixed(3)}`,
        );
      if (r.loss === undefined) return;
      bar.log(
        `step ${r.step}/${trainer.totalSteps}  loss ${r.loss.toFixed(4)}  ` +
          `grad_norm ${r.grad_norm!.toFixed(3)}  ${r.tokens_per_s!.toFixed(1)} tok/s`,
      );
    },
    onSave: async (checkpoint) => {
      if (checkpoint.kind === 'final') return saveFinal(outputDir, checkpoint, opts);
      const path = await saveCheckpoint(outputDir, checkpoint, trainer, opts);
      if (checkpoint.stopped) stopCheckpoint = path;
    },
  });
  const onSigint = () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    trainer.requestStop();
    log('\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)');
  };
  let stopRequested = false;
  process.on('SIGINT', onSigint);
  let result;
  try {
    result = await trainer.train();
  } finally {
    bar.done();
    process.off('SIGINT', onSigint);
  }
  return {
    globalStep: result.globalStep,
    trainLoss: result.trainLoss,
    evalLoss: result.evalLoss,
    outputDir,
    metricsPath,
    plotPaths: writePlot(outputDir, metricsPath),
    interrupted: result.stopped,
    checkpoint: stopCheckpoint,
  };
}

/** Restores the trainer from `resumeFromCheckpoint` (a folder, or 'latest' in outputDir). */
function resumeIfAsked(trainer: Trainer, isAdapter: boolean, log: (m: string) => void): boolean {
  const { resumeFromCheckpoint, outputDir } = trainer.args;
  if (!resumeFromCheckpoint) return false;
  const path =
    resumeFromCheckpoint === 'latest' ? latestCheckpoint(outputDir) : resumeFromCheckpoint;
  if (!path) {
    if (resumeFromCheckpoint === 'latest') return false; // nothing saved yet: a fresh start
    throw new LoraforgeError(`no checkpoint to resume from in ${outputDir}`);
  }
  const { trainerState, optimizer } = readCheckpoint(path);
  const file = SafetensorsFile.open(
    join(path, isAdapter ? 'adapter_model.safetensors' : 'model.safetensors'),
  );
  try {
    trainer.restore({
      trainerState,
      optimizer,
      weight: (name) => bytesToF32(file.info(name).dtype, file.read(name), `${path}: ${name}`),
    });
  } finally {
    file.close();
  }
  truncateMetricsAfter(join(outputDir, METRICS_FILE), trainer.globalStep);
  log(`resumed from ${path} at step ${trainer.globalStep}/${trainer.totalSteps}`);
  return true;
}

function writeWeights(dir: string, tensors: NamedTensorData[], opts: TrainInFolderOptions): void {
  const { adapter, adapterMeta = {}, baseModelDir } = opts;
  if (adapter) {
    writeAdapterFiles(dir, adapter, tensors, adapterMeta);
    return;
  }
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  if (!baseModelDir) return;
  for (const file of FULL_MODEL_FILES) {
    if (existsSync(join(baseModelDir, file)))
      copyFileSync(join(baseModelDir, file), join(dir, file));
  }
}

async function saveCheckpoint(
  outputDir: string,
  checkpoint: TrainerCheckpoint,
  trainer: Trainer,
  opts: TrainInFolderOptions,
): Promise<string> {
  const tensors = await checkpoint.weights();
  return writeCheckpoint(outputDir, {
    trainerState: {
      ...checkpoint.trainerState,
      ...(opts.runConfig && { run_config: opts.runConfig }),
    },
    optimizer: await checkpoint.optimizer(),
    writeExtra: (dir) => writeWeights(dir, tensors, opts),
    saveTotalLimit: trainer.args.saveTotalLimit,
  });
}

/**
 * The final weights sit at the top of outputDir (as HF's save_model), beside the checkpoints; the
 * config goes in last, so a kill mid-save leaves the old adapter or the new one.
 */
async function saveFinal(
  outputDir: string,
  checkpoint: TrainerCheckpoint,
  opts: TrainInFolderOptions,
): Promise<void> {
  const tensors = await checkpoint.weights();
  publishFiles(outputDir, (tmp) => writeWeights(tmp, tensors, opts), {
    commitLast: ['adapter_config.json', 'config.json'],
    keep: keepUserReadme(outputDir),
  });
}

function writePlot(outputDir: string, metricsPath: string): string[] {
  const points = readMetrics(metricsPath).map((r) => ({
    step: r.step,
    loss: r.loss,
    eval_loss: r.eval_loss,
    lr: r.lr,
  }));
  if (points.length === 0) return [];
  const svgPath = join(outputDir, 'loss.svg');
  const pngPath = join(outputDir, 'loss.png');
  writeLossPlot(points, { svgPath, pngPath, title: 'loraforge training loss' });
  return [svgPath, pngPath];
}
