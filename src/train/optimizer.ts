/**
 * AdamW with the exact semantics of `torch.optim.AdamW` (single-tensor path, amsgrad off), the
 * optimizer HF Trainer uses by default; the update itself is the `adamwStep` kernel
 * (engine/kernels/adamw.ts). `AdamW` runs the kernel's JS reference on host arrays: the test
 * reference of the Trainer's optimizer (device-optimizer.ts), which runs the kernel on the
 * backend. Both share the step count, bias corrections and checkpoint format (AdamWBase).
 */
import { ADAMW, adamwScalars } from '../engine/kernels/adamw.ts';
import { LoraforgeError } from '../util/errors.ts';

/** A trainable tensor as the optimizer sees it: flat f32 values and their gradient. */
export interface NamedParameter {
  name: string;
  data: Float32Array;
  grad: Float32Array;
  /** Overrides the optimizer's weight decay for this tensor (HF uses 0 for biases and norms). */
  weightDecay?: number;
}

/** Hyperparameters both AdamW implementations take. */
export interface AdamWHyperparameters {
  /** Default learning rate for step() without an argument. */
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Optimizer state as stored in checkpoints: moments as tensors, the rest as JSON. */
export interface AdamWStateDict {
  tensors: Record<string, Float32Array>;
  meta: {
    step: number;
    lr: number;
    betas: [number, number];
    eps: number;
    weightDecay: number;
    names: string[];
  };
}

/**
 * What the host AdamW and the device one (device-optimizer.ts) share: hyperparameters, the step
 * count and its bias corrections, and the checkpoint format, so that a checkpoint written on one
 * backend resumes on the other.
 */
export abstract class AdamWBase {
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** Learning rate used by step() when none is passed (and the last one used). */
  lr: number;
  /** Number of completed steps (PyTorch's per-parameter `step`, shared by all parameters). */
  stepCount = 0;

  protected constructor(
    private readonly names: readonly string[],
    options: AdamWHyperparameters,
  ) {
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    validateHyperparameters(this.lr, this.betas, this.eps, this.weightDecay);
    const seen = new Set<string>();
    for (const name of names) {
      if (seen.has(name)) throw new LoraforgeError(`AdamW: parameter '${name}' is listed twice`);
      seen.add(name);
    }
  }

  /** Counts one step at rate `lr` and returns its bias corrections 1 − β^t. */
  protected beginStep(lr: number): { bc1: number; bc2: number } {
    if (!Number.isFinite(lr) || lr < 0)
      throw new LoraforgeError(`AdamW: learning rate must be finite and >= 0, got ${lr}`);
    this.lr = lr;
    this.stepCount++;
    const [beta1, beta2] = this.betas;
    // Python float arithmetic, as in torch: bias_correction = 1 - beta ** step.
    return { bc1: 1 - beta1 ** this.stepCount, bc2: 1 - beta2 ** this.stepCount };
  }

  /** A checkpoint state around the given moments (keyed `<name>.exp_avg` / `<name>.exp_avg_sq`). */
  protected stateWith(
    expAvg: readonly Float32Array[],
    expAvgSq: readonly Float32Array[],
  ): AdamWStateDict {
    const tensors: Record<string, Float32Array> = {};
    this.names.forEach((name, i) => {
      tensors[`${name}.exp_avg`] = expAvg[i]!;
      tensors[`${name}.exp_avg_sq`] = expAvgSq[i]!;
    });
    const { lr, betas, eps, weightDecay } = this;
    return {
      tensors,
      meta: {
        step: this.stepCount,
        lr,
        betas: [...betas],
        eps,
        weightDecay,
        names: [...this.names],
      },
    };
  }

  /**
   * Checks a saved state against the parameters (by name, and `sizes[i]` values for parameter i)
   * and throws before anything changes, so a bad file leaves the optimizer untouched.
   */
  protected checkState(state: AdamWStateDict, sizes: readonly number[]): void {
    const { meta, tensors } = state;
    if (!Array.isArray(meta?.names) || !Number.isInteger(meta.step) || meta.step < 0)
      throw new LoraforgeError('optimizer state: missing or invalid step count or parameter names');
    const missing = this.names.filter((n) => !meta.names.includes(n));
    const extra = meta.names.filter((n) => !this.names.includes(n));
    if (missing.length > 0 || extra.length > 0) {
      throw new LoraforgeError(
        `optimizer state does not match the trainable parameters (missing: ${missing.slice(0, 3).join(', ') || 'none'}; unexpected: ${extra.slice(0, 3).join(', ') || 'none'})`,
        'resume with the same LoRA configuration (r, target modules) the checkpoint was trained with',
      );
    }
    this.names.forEach((name, i) => {
      for (const suffix of ['exp_avg', 'exp_avg_sq']) {
        const key = `${name}.${suffix}`;
        const saved = tensors[key];
        if (!saved) throw new LoraforgeError(`optimizer state: tensor '${key}' is missing`);
        if (saved.length !== sizes[i]) {
          throw new LoraforgeError(
            `optimizer state: '${key}' has ${saved.length} values, the parameter has ${sizes[i]}`,
          );
        }
      }
    });
    validateHyperparameters(meta.lr, meta.betas, meta.eps, meta.weightDecay);
  }

  /**
   * Takes over step count and hyperparameters from a checked state: like torch's
   * Optimizer.load_state_dict, the saved betas / eps / weight decay replace the constructed ones.
   */
  protected restoreMeta(meta: AdamWStateDict['meta']): void {
    this.stepCount = meta.step;
    this.lr = meta.lr;
    this.betas = [...meta.betas];
    this.eps = meta.eps;
    this.weightDecay = meta.weightDecay;
  }
}

export class AdamW extends AdamWBase {
  private readonly params: readonly NamedParameter[];
  private readonly expAvg: Float32Array[];
  private readonly expAvgSq: Float32Array[];

  constructor(params: readonly NamedParameter[], options: AdamWHyperparameters = {}) {
    super(
      params.map((p) => p.name),
      options,
    );
    for (const p of params) {
      if (p.grad.length !== p.data.length) {
        throw new LoraforgeError(
          `AdamW: parameter '${p.name}' has ${p.data.length} values but a gradient of ${p.grad.length}`,
        );
      }
    }
    this.params = params;
    this.expAvg = params.map((p) => new Float32Array(p.data.length));
    this.expAvgSq = params.map((p) => new Float32Array(p.data.length));
  }

  /** Applies one update to every parameter from its current `grad`, at learning rate `lr`. */
  step(lr: number = this.lr): void {
    const { bc1, bc2 } = this.beginStep(lr);
    this.params.forEach((p, i) => {
      const scalars = adamwScalars(
        lr,
        this.betas,
        this.eps,
        p.weightDecay ?? this.weightDecay,
        bc1,
        bc2,
      );
      ADAMW.adamwStep.reference(
        { p: p.data, g: p.grad, m: this.expAvg[i]!, v: this.expAvgSq[i]! },
        { n: p.data.length, ...scalars },
        { p: 'f32', g: 'f32', m: 'f32', v: 'f32' },
      );
    });
  }

  /** Zeroes every gradient (the caller accumulates into `grad` between steps). */
  zeroGrad(): void {
    for (const p of this.params) p.grad.fill(0);
  }

  /** Moments (copies) keyed `<name>.exp_avg` / `<name>.exp_avg_sq`, plus step count and hyperparameters. */
  stateDict(): AdamWStateDict {
    return this.stateWith(
      this.expAvg.map((m) => m.slice()),
      this.expAvgSq.map((v) => v.slice()),
    );
  }

  /**
   * Restores moments, step count and hyperparameters saved by stateDict() so a resumed run
   * continues bit-exactly. The parameter set must match by name and size.
   */
  loadStateDict(state: AdamWStateDict): void {
    this.checkState(
      state,
      this.params.map((p) => p.data.length),
    );
    this.params.forEach((p, i) => {
      this.expAvg[i]!.set(state.tensors[`${p.name}.exp_avg`]!);
      this.expAvgSq[i]!.set(state.tensors[`${p.name}.exp_avg_sq`]!);
    });
    this.restoreMeta(state.meta);
  }
}

function validateHyperparameters(
  lr: number,
  betas: [number, number],
  eps: number,
  weightDecay: number,
): void {
  if (!Number.isFinite(lr) || lr < 0)
    throw new LoraforgeError(`AdamW: invalid learning rate ${lr}`);
  if (!Array.isArray(betas) || betas.length !== 2) {
    throw new LoraforgeError(`AdamW: betas must be two numbers, got ${JSON.stringify(betas)}`);
  }
  for (const b of betas) {
    if (!(b >= 0 && b < 1))
      throw new LoraforgeError(`AdamW: betas must lie in [0, 1), got [${betas.join(', ')}]`);
  }
  if (!(eps >= 0)) throw new LoraforgeError(`AdamW: invalid eps ${eps}`);
  if (!(weightDecay >= 0)) throw new LoraforgeError(`AdamW: invalid weight decay ${weightDecay}`);
}
