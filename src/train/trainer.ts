/**
 * The Trainer: Hugging Face Trainer semantics (4.44) on loraforge's engine, with no file system,
 * process or terminal, so the same loop trains in Node and in a browser page. Per optimizer step
 * it runs `gradientAccumulationSteps` micro-batches, back-propagating each micro-batch's mean loss
 * divided by the accumulation count, clips the global gradient norm, applies AdamW at the
 * schedule's rate for that step, then logs, evaluates and reaches save points, reporting each
 * through callbacks (HF's TrainerCallback, mlx-lm's TrainingCallback). What a save writes, where
 * logs go and what stops a run belong to the caller: `trainInFolder` (train-in-folder.ts) is the
 * Node shell with checkpoints, metrics.jsonl, the plot, Ctrl-C and a progress bar.
 * LoRA training updates only the adapter; without an adapter every weight is trained.
 */
import { backward, clearTape, gradSlot, noGrad } from '../engine/tape.ts';
import { Tensor, getBackend, tidy } from '../engine/tensor.ts';
import type { Batch } from '../data/batch.ts';
import type { NamedTensorData } from '../io/safetensors-format.ts';
import type { DecoderModel, ModelInput } from '../models/decoder.ts';
import type { LoraAdapter } from '../peft/adapter.ts';
import { adapterTensors } from '../peft/adapter-files.ts';
import { LoraforgeError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { makeTrainingArguments, type TrainingArguments } from './arguments.ts';
import type { TrainerState } from './checkpoint-files.ts';
import type { MetricsRecord } from './metrics.ts';
import type { AdamWStateDict } from './optimizer.ts';
import { LrSchedule } from './schedule.ts';
import { createTrainerOptimizer, type TrainerOptimizer } from './trainer-optimizer.ts';

/** Where micro-batches come from (data/DataLoader implements it). */
export interface BatchSource {
  /** The next micro-batch (wrapping into the next epoch). */
  next(): Batch;
  readonly batchesPerEpoch: number;
  /** The position to checkpoint (JSON). */
  state(): unknown;
  /** Goes back to a position `state()` returned. */
  restore(state: never): void;
}

/** Where training stands after an optimizer step. */
export interface TrainerStepInfo {
  /** Optimizer steps completed. */
  globalStep: number;
  totalSteps: number;
  /** Fractional epochs completed. */
  epoch: number;
  /** This step's training loss (mean over its micro-batches). */
  loss: number;
  /** The rate the schedule has moved on to (that of the next step). */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

/** What a save point hands to `onSave`: everything a checkpoint folder holds. */
export interface TrainerCheckpoint {
  globalStep: number;
  /**
   * `checkpoint`: every `saveSteps` steps, and when a run is stopped (to resume from);
   * `final`: the end of training (the weights to keep).
   */
  kind: 'checkpoint' | 'final';
  /** True for the checkpoint that ends a stopped run. */
  stopped: boolean;
  /** HF trainer_state.json fields (step, epoch, RNG and data position, log history). */
  trainerState: TrainerState;
  /** Host copies of the trained tensors (PEFT keys for an adapter, model names otherwise). */
  weights(): Promise<NamedTensorData[]>;
  /** The AdamW moments and step count. */
  optimizer(): Promise<AdamWStateDict>;
}

/**
 * Hooks into the loop, as HF's TrainerCallback / mlx-lm's TrainingCallback. Every member is
 * optional; `onSave` may be async (the loop waits for it).
 */
export interface TrainerCallback {
  /** After every optimizer step. */
  onStep?(info: TrainerStepInfo): void;
  /** Every `loggingSteps` steps (train loss) and after each evaluation (eval loss). */
  onLog?(record: MetricsRecord): void;
  /** After each evaluation (every `evalSteps` steps, and at the end). */
  onEvaluate?(record: MetricsRecord): void;
  /** At each save point; persisting the checkpoint is the callback's job. */
  onSave?(checkpoint: TrainerCheckpoint): void | Promise<void>;
  /** Asked after every step; true ends the run with a checkpoint (as `requestStop()`). */
  shouldStop?(info: TrainerStepInfo): boolean;
}

/** What to train, on which data, with which arguments and callbacks. */
export interface TrainerOptions {
  model: DecoderModel;
  /** The adapter to train; null trains every model weight (full fine-tuning). */
  adapter: LoraAdapter | null;
  train: BatchSource;
  /** Validation batches, iterated from the start at each evaluation. */
  evalBatches?: () => Iterable<Batch>;
  /** Missing arguments take TRAINING_ARGUMENTS' defaults. */
  args?: Partial<TrainingArguments>;
  callbacks?: TrainerCallback[];
}

/** What `train()` returns. */
export interface TrainerResult {
  globalStep: number;
  /** Mean training loss over the steps run in this call. */
  trainLoss: number;
  /** The last evaluation's loss, if any. */
  evalLoss?: number;
  /** True when `requestStop()` or a `shouldStop` callback ended the run early. */
  stopped: boolean;
}

/** A checkpoint read back: `trainInFolder` loads one from disk and hands it to `restore`. */
export interface RestoredCheckpoint {
  trainerState: TrainerState;
  optimizer: AdamWStateDict;
  /** The saved values of a trained tensor, by its name in `TrainerCheckpoint.weights()`. */
  weight(name: string): Float32Array;
}

/** A batch as the model's forward pass takes it. */
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

/** Lets timers, signal handlers and (in a page) rendering run between steps. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Trains a model or its LoRA adapter. A Trainer trains once: `train()` frees the optimizer state
 * and the gradients when it returns.
 */
export class Trainer {
  readonly args: TrainingArguments;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  globalStep = 0;
  private readonly params: [string, Tensor][];
  private readonly optimizer: TrainerOptimizer;
  private readonly schedule: LrSchedule;
  private readonly rng: Rng;
  private readonly callbacks: TrainerCallback[];
  private logHistory: MetricsRecord[] = [];
  private stopRequested = false;

  constructor(private readonly opts: TrainerOptions) {
    const { model, adapter, train } = opts;
    const args = (this.args = makeTrainingArguments(opts.args));
    this.callbacks = [...(opts.callbacks ?? [])];
    this.params = adapter ? adapter.namedParameters() : [...model.namedWeights()];
    for (const [name, t] of this.params) {
      if (t.dtype !== 'f32') {
        throw new LoraforgeError(
          `cannot train ${name}: it is stored as ${t.dtype}`,
          'load the model with --dtype f32 for full fine-tuning',
        );
      }
      t.requiresGrad = true;
      getBackend().kernels.fill({ x: gradSlot(t).grad.operand() }, { n: t.size, value: 0 });
    }
    const trainable = this.params.map(([name, tensor]) => ({
      name,
      tensor,
      weightDecay: adapter || decays(name) ? args.weightDecay : 0,
    }));
    this.optimizer = createTrainerOptimizer(trainable, {
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
    model.gradientCheckpointing = args.gradientCheckpointing;
  }

  /** Adds a callback (HF's add_callback). */
  addCallback(callback: TrainerCallback): void {
    this.callbacks.push(callback);
  }

  /** Ends training after the current step with a checkpoint (what Ctrl-C does). */
  requestStop(): void {
    this.stopRequested = true;
  }

  /** The learning rate of optimizer step `step` (0-based). */
  lrAt(step: number): number {
    return this.schedule.lrAt(step);
  }

  /**
   * One micro-batch: forward, loss, backward of loss / accumulation. Returns the loss without
   * waiting for it: its read is recorded behind the backward pass, so a device backend submits
   * the micro-step as one command buffer and the host goes on to the next one while it runs.
   */
  private microStep(batch: Batch): Promise<number> {
    const accumulation = this.args.gradientAccumulationSteps;
    return tidy(() => {
      const { loss, targets } = this.opts.model.loss(modelInput(batch), batch.labels);
      if (targets === 0) {
        clearTape();
        return Promise.resolve(0);
      }
      backward(loss, 1 / accumulation);
      return loss.toFloat32().then((values) => values[0]!);
    });
  }

  /** Refuses a non-finite loss (read after the step's micro-batches have run). */
  private checkLoss(value: number): number {
    if (!Number.isFinite(value)) {
      throw new LoraforgeError(
        `training stopped at step ${this.globalStep + 1}: the loss is ${value}`,
        'lower the learning rate or check the data; the last good checkpoint is kept',
      );
    }
    return value;
  }

  /**
   * Trains to `totalSteps` (from `globalStep`, after a `restore`), or until a stop is asked for;
   * ends with an evaluation and the `final` save point, or with a `checkpoint` one when stopped.
   */
  async train(): Promise<TrainerResult> {
    const { args, opts } = this;
    const record = (r: MetricsRecord) => {
      this.logHistory.push(r);
      for (const cb of this.callbacks) cb.onLog?.(r);
    };
    let windowLoss = 0;
    let windowSteps = 0;
    let windowTokens = 0;
    let windowStart = performance.now();
    let runLoss = 0;
    let runSteps = 0;
    let evalLoss: number | undefined;
    try {
      while (this.globalStep < this.totalSteps && !this.stopRequested) {
        const lossReads: Promise<number>[] = [];
        for (let k = 0; k < args.gradientAccumulationSteps; k++) {
          const batch = opts.train.next();
          lossReads.push(this.microStep(batch));
          windowTokens += batch.attentionMask.reduce((a, b) => a + b, 0);
        }
        // The first wait of the step: the gradient norm (clipping needs it on the host) and the
        // losses, which are ready by then.
        const [losses, gradNorm] = await Promise.all([
          Promise.all(lossReads),
          this.optimizer.clipGradients(args.maxGradNorm),
        ]);
        let stepLoss = 0;
        for (const loss of losses)
          stepLoss += this.checkLoss(loss) / args.gradientAccumulationSteps;
        if (!Number.isFinite(gradNorm)) {
          throw new LoraforgeError(
            `training stopped at step ${this.globalStep + 1}: the gradient norm is ${gradNorm}`,
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

        const info: TrainerStepInfo = {
          globalStep: this.globalStep,
          totalSteps: this.totalSteps,
          epoch: this.globalStep / this.stepsPerEpoch,
          loss: stepLoss,
          lr: this.schedule.lrAt(this.globalStep),
          gradNorm,
        };
        for (const cb of this.callbacks) cb.onStep?.(info);
        if (this.globalStep % args.loggingSteps === 0 || this.globalStep === this.totalSteps) {
          const seconds = (performance.now() - windowStart) / 1000;
          record({
            step: this.globalStep,
            epoch: info.epoch,
            loss: windowLoss / windowSteps,
            // As HF logs it: the rate the scheduler has moved on to after this step.
            lr: info.lr,
            grad_norm: gradNorm,
            tokens_per_s: windowTokens / seconds,
            time: new Date().toISOString(),
          });
          windowLoss = windowSteps = windowTokens = 0;
          windowStart = performance.now();
        }
        if (opts.evalBatches && args.evalSteps > 0 && this.globalStep % args.evalSteps === 0) {
          evalLoss = await this.evaluateAndRecord(record);
        }
        if (
          args.saveSteps > 0 &&
          this.globalStep % args.saveSteps === 0 &&
          this.globalStep < this.totalSteps
        ) {
          await this.save('checkpoint', false);
        }
        if (this.callbacks.some((cb) => cb.shouldStop?.(info))) this.stopRequested = true;
        await yieldToEventLoop();
      }
      if (this.stopRequested) {
        await this.save('checkpoint', true);
      } else {
        if (opts.evalBatches && (args.evalSteps === 0 || this.globalStep % args.evalSteps !== 0)) {
          evalLoss = await this.evaluateAndRecord(record);
        }
        await this.save('final', false);
      }
    } finally {
      this.release();
    }
    return {
      globalStep: this.globalStep,
      trainLoss: runSteps ? runLoss / runSteps : NaN,
      evalLoss,
      stopped: this.stopRequested,
    };
  }

  /**
   * Mean loss over `batches` (default: the validation batches), weighted by batch rows as HF
   * averages; no gradients, no dropout.
   */
  async evaluate(batches: Iterable<Batch> = this.opts.evalBatches?.() ?? []): Promise<number> {
    let total = 0;
    let rows = 0;
    for (const batch of batches) {
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

  /**
   * Puts the run where a checkpoint left it: trained weights, optimizer moments, step, RNG, data
   * position and log history. Call before `train()`.
   */
  restore(checkpoint: RestoredCheckpoint): void {
    for (const [name, t] of this.params) {
      t.backend.upload(t.storage, t.byteOffset, checkpoint.weight(name));
    }
    const state = checkpoint.trainerState;
    this.optimizer.loadStateDict(checkpoint.optimizer);
    this.globalStep = state.global_step;
    this.rng.restore(state.rng_state);
    (this.opts.train.restore as (s: unknown) => void)(state.data_state);
    this.logHistory = state.log_history;
  }

  private async evaluateAndRecord(record: (r: MetricsRecord) => void): Promise<number> {
    const loss = await this.evaluate();
    const r: MetricsRecord = {
      step: this.globalStep,
      epoch: this.globalStep / this.stepsPerEpoch,
      eval_loss: loss,
      eval_ppl: Math.exp(loss),
    };
    for (const cb of this.callbacks) cb.onEvaluate?.(r);
    record(r);
    return loss;
  }

  private async save(kind: TrainerCheckpoint['kind'], stopped: boolean): Promise<void> {
    const savers = this.callbacks.filter((cb) => cb.onSave);
    if (savers.length === 0) return;
    const checkpoint: TrainerCheckpoint = {
      globalStep: this.globalStep,
      kind,
      stopped,
      trainerState: {
        global_step: this.globalStep,
        epoch: this.globalStep / this.stepsPerEpoch,
        rng_state: this.rng.state(),
        data_state: this.opts.train.state(),
        log_history: this.logHistory,
        best_metric: null,
        best_model_checkpoint: null,
        total_steps: this.totalSteps,
      },
      weights: () => this.trainableTensors(),
      optimizer: () => this.optimizer.stateDict(),
    };
    for (const cb of savers) await cb.onSave!(checkpoint);
  }

  private async trainableTensors(): Promise<NamedTensorData[]> {
    if (this.opts.adapter) return adapterTensors(this.opts.adapter);
    const out: NamedTensorData[] = [];
    for (const [name, t] of this.params)
      out.push({ name, dtype: 'F32', shape: t.shape, data: await t.toFloat32() });
    return out;
  }

  /** Frees the optimizer state and the gradients; the trained tensors stay (frozen again). */
  private release(): void {
    this.optimizer.dispose();
    for (const [, t] of this.params) {
      t.requiresGrad = false;
      t.grad?.dispose();
      t.grad = null;
    }
  }
}
