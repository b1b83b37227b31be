/**
 * The Trainer's once-per-step parameter update (gradient clipping, AdamW, its checkpoint state),
 * on whichever memory the backend offers: host views of the CPU's memory with the reference
 * AdamW and clip.ts, or device tensors with DeviceAdamW and device-clip.ts elsewhere (WebGPU).
 * Both give torch's semantics and share one checkpoint format.
 */
import type { Backend } from '../engine/backend.ts';
import type { Tensor } from '../engine/tensor.ts';
import { clipGradNorm, globalGradNorm } from './clip.ts';
import { clipDeviceGradNorm, deviceGradNorm } from './device-clip.ts';
import { DeviceAdamW } from './device-optimizer.ts';
import { AdamW, type AdamWHyperparameters, type AdamWStateDict } from './optimizer.ts';

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
  backend: Backend,
  params: readonly TrainableParameter[],
  options: AdamWHyperparameters,
): TrainerOptimizer {
  return backend.hostView ? hostOptimizer(params, options) : deviceOptimizer(params, options);
}

function hostOptimizer(
  params: readonly TrainableParameter[],
  options: AdamWHyperparameters,
): TrainerOptimizer {
  const grads = params.map((p) => p.tensor.grad!.hostF32());
  const adamw = new AdamW(
    params.map((p, i) => ({
      name: p.name,
      data: p.tensor.hostF32(),
      grad: grads[i]!,
      weightDecay: p.weightDecay,
    })),
    options,
  );
  return {
    clipGradients: async (maxNorm) =>
      maxNorm > 0 ? clipGradNorm(grads, maxNorm) : globalGradNorm(grads),
    step: (lr) => adamw.step(lr),
    zeroGrad: () => adamw.zeroGrad(),
    stateDict: async () => adamw.stateDict(),
    loadStateDict: (state) => adamw.loadStateDict(state),
    dispose: () => {},
  };
}

function deviceOptimizer(
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
