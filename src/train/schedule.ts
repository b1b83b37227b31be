/**
 * Learning-rate schedules with the exact formulas of transformers' `get_*_schedule_with_warmup`
 * (the lambdas LambdaLR multiplies the base rate with). `lrAt(step)` takes the 0-based optimizer
 * step: optimizer step s (1-based) runs with lrAt(s − 1), so the very first step of a warmup runs
 * with lr = 0, exactly as in HF Trainer.
 */
import { LoraforgeError } from '../util/errors.ts';

export type ScheduleName = 'linear' | 'cosine' | 'constant' | 'constant_with_warmup';
export const SCHEDULE_NAMES: readonly ScheduleName[] = [
  'linear',
  'cosine',
  'constant',
  'constant_with_warmup',
];

export interface ScheduleOptions {
  name: ScheduleName;
  /** Peak learning rate (the optimizer's base lr). */
  lr: number;
  /** Total optimizer steps (HF num_training_steps). */
  totalSteps: number;
  /** Warmup in optimizer steps; takes precedence over warmupRatio when > 0 (as in HF). */
  warmupSteps?: number;
  /** Fraction of totalSteps used for warmup, rounded up: ceil(ratio · totalSteps). */
  warmupRatio?: number;
  /** Cosine only: number of half-periods is 2·numCycles; HF's default 0.5 decays once to 0. */
  numCycles?: number;
}

export class LrSchedule {
  readonly warmupSteps: number;

  constructor(readonly options: ScheduleOptions) {
    const { name, lr, totalSteps } = options;
    if (!SCHEDULE_NAMES.includes(name)) {
      throw new LoraforgeError(
        `unknown lr scheduler '${name}'`,
        `use one of: ${SCHEDULE_NAMES.join(', ')}`,
      );
    }
    if (!Number.isFinite(lr) || lr < 0)
      throw new LoraforgeError(`learning rate must be finite and >= 0, got ${lr}`);
    if (!Number.isInteger(totalSteps) || totalSteps < 0) {
      throw new LoraforgeError(
        `total training steps must be a non-negative integer, got ${totalSteps}`,
      );
    }
    this.warmupSteps = resolveWarmupSteps(totalSteps, options.warmupSteps, options.warmupRatio);
  }

  /** The schedule's multiplier of the base lr at 0-based optimizer step `step`. */
  factorAt(step: number): number {
    const { name, totalSteps, numCycles = 0.5 } = this.options;
    const warmup = this.warmupSteps;
    if (name === 'constant') return 1;
    if (step < warmup) return step / Math.max(1, warmup);
    switch (name) {
      case 'constant_with_warmup':
        return 1;
      case 'linear':
        return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmup));
      case 'cosine': {
        const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
        return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
      }
    }
  }

  /** Learning rate for 0-based optimizer step `step` (base_lr · factor, as LambdaLR computes it). */
  lrAt(step: number): number {
    return this.options.lr * this.factorAt(step);
  }
}

/** HF TrainingArguments.get_warmup_steps: explicit steps if > 0, else ceil(ratio · total). */
export function resolveWarmupSteps(totalSteps: number, warmupSteps = 0, warmupRatio = 0): number {
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    throw new LoraforgeError(`warmup steps must be a non-negative integer, got ${warmupSteps}`);
  }
  if (!(warmupRatio >= 0 && warmupRatio <= 1))
    throw new LoraforgeError(`warmup ratio must lie in [0, 1], got ${warmupRatio}`);
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}
