/**
 * The Trainer's AdamW on every backend: the moments are device tensors and each step is the
 * backend's `adamwStep` kernel (engine/kernels/adamw.ts). It keeps the reference AdamW's
 * semantics and checkpoint format (optimizer.ts); the moments only cross to the host when a
 * checkpoint is written or restored.
 */
import { adamwScalars } from '../engine/kernels/adamw.ts';
import { Tensor } from '../engine/tensor.ts';
import { LoraforgeError } from '../util/errors.ts';
import { AdamWBase, type AdamWHyperparameters, type AdamWStateDict } from './optimizer.ts';

/** A trainable tensor whose `grad` the caller fills between steps. */
export interface DeviceParameter {
  name: string;
  tensor: Tensor;
  /** Overrides the optimizer's weight decay for this tensor (HF uses 0 for biases and norms). */
  weightDecay?: number;
}

export class DeviceAdamW extends AdamWBase {
  private readonly params: readonly DeviceParameter[];
  private readonly grads: readonly Tensor[];
  private readonly expAvg: readonly Tensor[];
  private readonly expAvgSq: readonly Tensor[];

  constructor(params: readonly DeviceParameter[], options: AdamWHyperparameters = {}) {
    super(
      params.map((p) => p.name),
      options,
    );
    this.grads = params.map(({ name, tensor }) => {
      if (
        tensor.dtype !== 'f32' ||
        tensor.grad?.size !== tensor.size ||
        tensor.grad.dtype !== 'f32'
      ) {
        throw new LoraforgeError(
          `AdamW: parameter '${name}' needs to be f32 with an f32 gradient of its size`,
        );
      }
      return tensor.grad;
    });
    this.params = params;
    this.expAvg = params.map((p) => Tensor.zeros(p.tensor.shape).keep());
    this.expAvgSq = params.map((p) => Tensor.zeros(p.tensor.shape).keep());
  }

  /** Applies one update to every parameter from its current `grad`, at learning rate `lr`. */
  step(lr: number = this.lr): void {
    const { bc1, bc2 } = this.beginStep(lr);
    this.params.forEach(({ tensor, weightDecay = this.weightDecay }, i) => {
      const scalars = adamwScalars(lr, this.betas, this.eps, weightDecay, bc1, bc2);
      tensor.backend.kernels.adamwStep(
        {
          p: tensor.operand(),
          g: this.grads[i]!.operand(),
          m: this.expAvg[i]!.operand(),
          v: this.expAvgSq[i]!.operand(),
        },
        { n: tensor.size, ...scalars },
      );
    });
  }

  /** Zeroes every gradient (the caller accumulates into `grad` between steps). */
  zeroGrad(): void {
    for (const g of this.grads) g.backend.kernels.fill({ x: g.operand() }, { n: g.size, value: 0 });
  }

  dispose(): void {
    for (const m of [...this.expAvg, ...this.expAvgSq]) m.dispose();
  }

  /** Downloads the moments into the host AdamW's checkpoint format. */
  async stateDict(): Promise<AdamWStateDict> {
    const download = (moments: readonly Tensor[]) => Promise.all(moments.map((m) => m.toFloat32()));
    return this.stateWith(await download(this.expAvg), await download(this.expAvgSq));
  }

  /** Restores (uploads) moments, step count and hyperparameters saved by either AdamW. */
  loadStateDict(state: AdamWStateDict): void {
    this.checkState(
      state,
      this.params.map((p) => p.tensor.size),
    );
    this.params.forEach(({ name }, i) => {
      for (const [suffix, moment] of [
        ['exp_avg', this.expAvg[i]!],
        ['exp_avg_sq', this.expAvgSq[i]!],
      ] as const) {
        moment.backend.upload(
          moment.storage,
          moment.byteOffset,
          state.tensors[`${name}.${suffix}`]!,
        );
      }
    });
    this.restoreMeta(state.meta);
  }
}
