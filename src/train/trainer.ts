/**
 * The Trainer: Hugging Face Trainer semantics (4.44) on loraforge's engine. Per optimizer step it
 * runs `gradientAccumulationSteps` micro-batches, back-propagating each micro-batch's mean loss
 * divided by the accumulation count, clips the global gradient norm, applies AdamW at the
 * schedule's rate for that step, then logs, evaluates and checkpoints. LoRA training updates only
 * the adapter; without an adapter every weight is trained (full fine-tuning, for small models).
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { backward, clearTape, gradSlot, noGrad } from '../engine/tape.ts';
import { Tensor, getBackend, tidy, tidyAsync } from '../engine/tensor.ts';
import type { Batch } from '../data/batch.ts';
import {
  SafetensorsFile,
  bytesToF32,
  encodeSafetensors,
  type NamedTensorData,
} from '../io/safetensors.ts';
import { writeDirAtomic, writeFileAtomic } from '../io/atomic.ts';
import type { DecoderModel, ModelInput } from '../models/decoder.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { adapterTensors, writeAdapterFiles, type AdapterMeta } from '../peft/io.ts';
import { LoraforgeError } from '../util/errors.ts';
import { ProgressBar } from '../util/progress.ts';
import { Rng } from '../util/rng.ts';
import type { TrainingArguments } from './arguments.ts';
import {
  latestCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type TrainerState,
} from './checkpoint-files.ts';
import { MetricsWriter, readMetrics, truncateMetricsAfter, type MetricsRecord } from './metrics.ts';
import { writeLossPlot } from './plot.ts';
import { LrSchedule } from './schedule.ts';
import { createTrainerOptimizer, type TrainerOptimizer } from './trainer-optimizer.ts';

/** Where micro-batches come from (data/DataLoader implements it). */
export interface BatchSource {
  next(): Batch;
  readonly batchesPerEpoch: number;
  state(): unknown;
  restore(state: never): void;
}

/** The model (and adapter) to train, the data, the arguments and where to report. */
export interface TrainerOptions {
  model: DecoderModel;
  /** The adapter to train; null trains every model weight (full fine-tuning). */
  adapter: LoraAdapter | null;
  train: BatchSource;
  /** Validation batches, iterated from the start at each evaluation. */
  evalBatches?: () => Iterable<Batch>;
  args: TrainingArguments;
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
}

/** How a training run ended: steps, losses, where the adapter and checkpoints are. */
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
}

const METRICS_FILE = 'metrics.jsonl';

export function modelInput(batch: Batch): ModelInput {
  return {
    batch: batch.batchSize,
    seq: batch.seqLen,
    inputIds: batch.inputIds,
    positionIds: batch.positionIds,
    attentionMask: batch.attentionMask,
    segmentIds: batch.segmentIds,
  };
}

/** HF excludes biases and norm weights from weight decay when training full models. */
function decays(name: string): boolean {
  return !name.endsWith('.bias') && !name.includes('norm');
}

/** The training loop: micro-batches, gradient accumulation, clipping, AdamW, learning-rate schedule, evaluation, checkpoints and metrics. */
export class Trainer {
  private readonly params: [string, Tensor][];
  private readonly optimizer: TrainerOptimizer;
  private readonly schedule: LrSchedule;
  private readonly rng: Rng;
  readonly totalSteps: number;
  private readonly stepsPerEpoch: number;
  globalStep = 0;
  private logHistory: MetricsRecord[] = [];
  private stopRequested = false;

  constructor(private readonly opts: TrainerOptions) {
    const { model, adapter, args, train } = opts;
    this.params = adapter ? adapter.namedParameters() : [...model.namedWeights()];
    for (const [name, t] of this.params) {
      if (t.dtype !== 'f32') {
        throw new LoraforgeError(
          `cannot train ${name}: it is stored as ${t.dtype}`,
          'load the model with --dtype f32 for full fine-tuning',
        );
      }
      t.requiresGrad = true;
      getBackend().kernels.fill(gradSlot(t).grad.operand(), t.size, 0);
    }
    const trainable = this.params.map(([name, tensor]) => ({
      name,
      tensor,
      weightDecay: adapter || decays(name) ? args.weightDecay : 0,
    }));
    this.optimizer = createTrainerOptimizer(getBackend(), trainable, {
      lr: args.learningRate,
      betas: [args.adamBeta1, args.adamBeta2],
      eps: args.adamEpsilon,
      weightDecay: args.weightDecay,
    });
    this.stepsPerEpoch = Math.max(
      1,
      Math.floor(train.batchesPerEpoch / args.gradientAccumulationSteps),
    );
    this.totalSteps =
      args.maxSteps > 0 ? args.maxSteps : Math.ceil(args.numTrainEpochs * this.stepsPerEpoch);
    this.schedule = new LrSchedule({
      name: args.lrSchedulerType,
      lr: args.learningRate,
      totalSteps: this.totalSteps,
      warmupSteps: args.warmupSteps,
      warmupRatio: args.warmupRatio,
    });
    this.rng = new Rng(args.seed);
    model.dropoutSeeds = () => this.rng.nextU32();
  }

  private log(message: string): void {
    (this.opts.log ?? ((m: string) => process.stderr.write(`${m}\n`)))(message);
  }

  /** One micro-batch: forward, loss, backward of loss / accumulation. Returns the loss. */
  private microStep(batch: Batch): Promise<number> {
    const accumulation = this.opts.args.gradientAccumulationSteps;
    return tidyAsync(async () => {
      const { loss, targets } = this.opts.model.loss(modelInput(batch), batch.labels);
      const value = (await loss.toFloat32())[0]!;
      if (targets === 0) {
        clearTape();
        return 0;
      }
      if (!Number.isFinite(value)) {
        clearTape();
        throw new LoraforgeError(
          `training stopped at step ${this.globalStep + 1}: the loss is ${value}`,
          'lower the learning rate or check the data; the last good checkpoint is kept',
        );
      }
      backward(loss, 1 / accumulation);
      return value;
    });
  }

  /** Trains to the end (or until interrupted) and saves the result. */
  async train(): Promise<TrainResult> {
    const { args, train } = this.opts;
    mkdirSync(args.outputDir, { recursive: true });
    const metricsPath = join(args.outputDir, METRICS_FILE);
    const resumed = this.resumeIfAsked();
    const metrics = new MetricsWriter(metricsPath, { truncate: !resumed });
    const onSigint = () => {
      if (this.stopRequested) process.exit(130);
      this.requestStop();
      this.log('\nstopping after this step and saving a checkpoint (Ctrl-C again to quit at once)');
    };
    process.on('SIGINT', onSigint);
    const bar = new ProgressBar({
      total: this.totalSteps,
      label: 'train',
      unit: 'step',
      start: this.globalStep,
      stream: this.opts.progress === false ? { write: () => true } : undefined,
    });
    bar.update(this.globalStep);
    const record = (r: MetricsRecord) => {
      metrics.write(r);
      this.logHistory.push(r);
      this.opts.onLog?.(r);
    };

    let windowLoss = 0;
    let windowSteps = 0;
    let windowTokens = 0;
    let windowStart = performance.now();
    let lastGradNorm = 0;
    let runLoss = 0;
    let runSteps = 0;
    let evalLoss: number | undefined;
    try {
      while (this.globalStep < this.totalSteps && !this.stopRequested) {
        let stepLoss = 0;
        for (let k = 0; k < args.gradientAccumulationSteps; k++) {
          const batch = train.next();
          stepLoss += (await this.microStep(batch)) / args.gradientAccumulationSteps;
          windowTokens += batch.attentionMask.reduce((a, b) => a + b, 0);
        }
        lastGradNorm = await this.optimizer.clipGradients(args.maxGradNorm);
        if (!Number.isFinite(lastGradNorm)) {
          throw new LoraforgeError(
            `training stopped at step ${this.globalStep + 1}: the gradient norm is ${lastGradNorm}`,
            'lower the learning rate; the last good checkpoint is kept',
          );
        }
        this.optimizer.step(this.schedule.lrAt(this.globalStep));
        this.optimizer.zeroGrad();
        this.globalStep++;
        windowLoss += stepLoss;
        windowSteps++;
        runLoss += stepLoss;
        runSteps++;

        const fields = {
          loss: stepLoss.toFixed(4),
          lr: this.schedule.lrAt(this.globalStep).toExponential(2),
        };
        bar.update(this.globalStep, fields);
        if (this.globalStep % args.loggingSteps === 0 || this.globalStep === this.totalSteps) {
          const seconds = (performance.now() - windowStart) / 1000;
          record({
            step: this.globalStep,
            epoch: this.globalStep / this.stepsPerEpoch,
            loss: windowLoss / windowSteps,
            // As HF logs it: the rate the scheduler has moved on to after this step.
            lr: this.schedule.lrAt(this.globalStep),
            grad_norm: lastGradNorm,
            tokens_per_s: windowTokens / seconds,
            time: new Date().toISOString(),
          });
          bar.log(
            `step ${this.globalStep}/${this.totalSteps}  loss ${(windowLoss / windowSteps).toFixed(4)}  ` +
              `grad_norm ${lastGradNorm.toFixed(3)}  ${(windowTokens / seconds).toFixed(1)} tok/s`,
          );
          windowLoss = windowSteps = windowTokens = 0;
          windowStart = performance.now();
        }
        if (this.opts.evalBatches && args.evalSteps > 0 && this.globalStep % args.evalSteps === 0) {
          evalLoss = await this.evaluateAndRecord(record);
        }
        if (
          args.saveSteps > 0 &&
          this.globalStep % args.saveSteps === 0 &&
          this.globalStep < this.totalSteps
        ) {
          await this.saveCheckpoint();
        }
        // Lets signal handlers run between steps.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (this.stopRequested) {
        const path = await this.saveCheckpoint();
        this.log(`saved ${path}; resume with --resume`);
      } else {
        if (
          this.opts.evalBatches &&
          (args.evalSteps === 0 || this.globalStep % args.evalSteps !== 0)
        ) {
          evalLoss = await this.evaluateAndRecord(record);
        }
        await this.saveFinal();
      }
    } finally {
      bar.done();
      process.off('SIGINT', onSigint);
      // A Trainer trains once: its optimizer state is freed with the run.
      this.optimizer.dispose();
    }
    const plotPaths = this.writePlot(metricsPath);
    return {
      globalStep: this.globalStep,
      trainLoss: runSteps ? runLoss / runSteps : NaN,
      evalLoss,
      outputDir: args.outputDir,
      metricsPath,
      plotPaths,
      interrupted: this.stopRequested,
    };
  }

  /** Ends training after the current step with a checkpoint (what Ctrl-C does). */
  requestStop(): void {
    this.stopRequested = true;
  }

  /** Mean loss over the validation batches (weighted by batch rows, as HF averages). */
  async evaluate(): Promise<number> {
    let total = 0;
    let rows = 0;
    for (const batch of this.opts.evalBatches?.() ?? []) {
      const loss = noGrad(() =>
        tidy(() => this.opts.model.loss(modelInput(batch), batch.labels).loss),
      );
      const value = (await loss.toFloat32())[0]!;
      loss.dispose();
      total += value * batch.batchSize;
      rows += batch.batchSize;
    }
    return rows ? total / rows : NaN;
  }

  private async evaluateAndRecord(record: (r: MetricsRecord) => void): Promise<number> {
    const loss = await this.evaluate();
    record({
      step: this.globalStep,
      epoch: this.globalStep / this.stepsPerEpoch,
      eval_loss: loss,
      eval_ppl: Math.exp(loss),
    });
    return loss;
  }

  private async trainableTensors(): Promise<NamedTensorData[]> {
    if (this.opts.adapter) return adapterTensors(this.opts.adapter);
    const out: NamedTensorData[] = [];
    for (const [name, t] of this.params)
      out.push({ name, dtype: 'F32', shape: t.shape, data: await t.toFloat32() });
    return out;
  }

  private writeWeights(dir: string, tensors: NamedTensorData[]): void {
    const { adapter, adapterMeta = {}, baseModelDir } = this.opts;
    if (adapter) {
      writeAdapterFiles(dir, adapter, tensors, adapterMeta);
      return;
    }
    mkdirSync(dir, { recursive: true });
    writeFileAtomic(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
    if (baseModelDir) {
      for (const file of [
        'config.json',
        'generation_config.json',
        'tokenizer.json',
        'tokenizer_config.json',
      ]) {
        if (existsSync(join(baseModelDir, file)))
          copyFileSync(join(baseModelDir, file), join(dir, file));
      }
    }
  }

  private async saveCheckpoint(): Promise<string> {
    const { args, train } = this.opts;
    const tensors = await this.trainableTensors();
    const trainerState: TrainerState = {
      global_step: this.globalStep,
      epoch: this.globalStep / this.stepsPerEpoch,
      rng_state: this.rng.state(),
      data_state: train.state(),
      log_history: this.logHistory,
      best_metric: null,
      best_model_checkpoint: null,
      total_steps: this.totalSteps,
    };
    const path = writeCheckpoint(args.outputDir, {
      trainerState,
      optimizer: await this.optimizer.stateDict(),
      writeExtra: (dir) => this.writeWeights(dir, tensors),
      saveTotalLimit: args.saveTotalLimit,
    });
    return path;
  }

  private async saveFinal(): Promise<void> {
    const tensors = await this.trainableTensors();
    const dir = this.opts.args.outputDir;
    // The final weights sit at the top of outputDir (as HF's save_model), beside the checkpoints.
    const staging = join(dir, 'final');
    writeDirAtomic(staging, (tmp) => this.writeWeights(tmp, tensors));
    for (const file of readdirSync(staging)) {
      rmSync(join(dir, file), { force: true });
      renameSync(join(staging, file), join(dir, file));
    }
    rmSync(staging, { recursive: true, force: true });
  }

  /** Restores adapter, optimizer, schedule position, RNG and data position from a checkpoint. */
  private resumeIfAsked(): boolean {
    const { args, train } = this.opts;
    if (!args.resumeFromCheckpoint) return false;
    const path =
      args.resumeFromCheckpoint === true
        ? latestCheckpoint(args.outputDir)
        : args.resumeFromCheckpoint;
    if (!path) {
      if (args.resumeFromCheckpoint === true) return false; // nothing saved yet: a fresh start
      throw new LoraforgeError(`no checkpoint to resume from in ${args.outputDir}`);
    }
    const { trainerState, optimizer } = readCheckpoint(path);
    const weightsFile = this.opts.adapter ? 'adapter_model.safetensors' : 'model.safetensors';
    const file = SafetensorsFile.open(join(path, weightsFile));
    try {
      for (const [name, t] of this.params) {
        const info = file.info(name);
        t.backend.upload(
          t.storage,
          t.byteOffset,
          bytesToF32(info.dtype, file.read(name), `${path}: ${name}`),
        );
      }
    } finally {
      file.close();
    }
    this.optimizer.loadStateDict(optimizer);
    this.globalStep = trainerState.global_step;
    this.rng.restore(trainerState.rng_state);
    (train.restore as (s: unknown) => void)(trainerState.data_state);
    this.logHistory = trainerState.log_history;
    truncateMetricsAfter(join(args.outputDir, METRICS_FILE), this.globalStep);
    this.log(`resumed from ${path} at step ${this.globalStep}/${this.totalSteps}`);
    return true;
  }

  private writePlot(metricsPath: string): string[] {
    const points = readMetrics(metricsPath).map((r) => ({
      step: r.step,
      loss: r.loss,
      eval_loss: r.eval_loss,
      lr: r.lr,
    }));
    if (points.length === 0) return [];
    const svgPath = join(this.opts.args.outputDir, 'loss.svg');
    const pngPath = join(this.opts.args.outputDir, 'loss.png');
    writeLossPlot(points, { svgPath, pngPath, title: 'loraforge training loss' });
    return [svgPath, pngPath];
  }
}
