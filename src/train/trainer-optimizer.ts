/**
 * The Trainer's once-per-step parameter update (gradient clipping, AdamW, its checkpoint state):
 * one path on every backend, the device kernels `sumSquares`, `axpby`, `adamwStep` and `fill`
 * (device-clip.ts, device-optimizer.ts), with torch's semantics; the host AdamW and clip.ts are
 * their test references.
 */
import type { Tensor } from '../engine/tensor.ts';
import { clipDeviceGradNorm, deviceGradNorm } from './device-clip.ts';
import { DeviceAdamW } from './device-optimizer.ts';
import type { AdamWHyperparameters, AdamWStateDict } from './optimizer.ts';

/** A tensor to train; its `grad` must exist (the Trainer creates it) and keep its storage. */
export interface TrainableParameter {
  name: string;
  tensor: Tensor;
  weightDecay: number;
}

export interface TrainerOptimizer {
  /** Global L2 norm of the gradients before clipping; clips them to `maxNorm` when it is > 0. */
  clipGradients(maxNorm: number): Promise<number>;
  step(lr: number): void;
  zeroGrad(): void;
  stateDict(): Promise<AdamWStateDict>;
  loadStateDict(state: AdamWStateDict): void;
  /** Frees optimizer state held on the device (the moments); the optimizer is dead afterwards. */
  dispose(): void;
}

export function createTrainerOptimizer(
  params: readonly TrainableParameter[],
  options: AdamWHyperparameters,
): TrainerOptimizer {
  const grads = params.map((p) => p.tensor.grad!);
  const adamw = new DeviceAdamW(params, options);
  return {
    clipGradients: (maxNorm) =>
      maxNorm > 0 ? clipDeviceGradNorm(grads, maxNorm) : deviceGradNorm(grads),
    step: (lr) => adamw.step(lr),
    zeroGrad: () => adamw.zeroGrad(),
    stateDict: () => adamw.stateDict(),
    loadStateDict: (state) => adamw.loadStateDict(state),
    dispose: () => adamw.dispose(),
  };
}
