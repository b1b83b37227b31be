/** Training arguments with Hugging Face TrainingArguments' meaning and defaults where they exist. */
import { LoraforgeError } from '../util/errors.ts';
import { SCHEDULE_NAMES, type ScheduleName } from './schedule.ts';

/** The Trainer's settings, named after transformers' `TrainingArguments`. */
export interface TrainingArguments {
  outputDir: string;
  numTrainEpochs: number;
  /** > 0 overrides numTrainEpochs (HF max_steps). */
  maxSteps: number;
  gradientAccumulationSteps: number;
  learningRate: number;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEpsilon: number;
  maxGradNorm: number;
  lrSchedulerType: ScheduleName;
  warmupSteps: number;
  warmupRatio: number;
  loggingSteps: number;
  /** 0 = evaluate only at the end. */
  evalSteps: number;
  /** 0 = save only at the end. */
  saveSteps: number;
  saveTotalLimit: number;
  seed: number;
  /** A checkpoint folder, or true for the latest one in outputDir. */
  resumeFromCheckpoint?: string | boolean;
}

/** Defaults of every training argument but `outputDir`. */
export const DEFAULT_TRAINING_ARGUMENTS: Omit<TrainingArguments, 'outputDir'> = {
  numTrainEpochs: 3,
  maxSteps: -1,
  gradientAccumulationSteps: 1,
  learningRate: 2e-4,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEpsilon: 1e-8,
  maxGradNorm: 1,
  lrSchedulerType: 'cosine',
  warmupSteps: 0,
  warmupRatio: 0,
  loggingSteps: 10,
  evalSteps: 0,
  saveSteps: 0,
  saveTotalLimit: 0,
  seed: 42,
};

/** Full, validated TrainingArguments from some fields and the defaults. */
export function makeTrainingArguments(
  partial: Partial<TrainingArguments> & { outputDir: string },
): TrainingArguments {
  const args = { ...DEFAULT_TRAINING_ARGUMENTS, ...partial };
  const positiveInts: (keyof TrainingArguments)[] = ['gradientAccumulationSteps', 'loggingSteps'];
  for (const key of positiveInts) {
    const v = args[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new LoraforgeError(`${key} must be a whole number >= 1 (got ${JSON.stringify(v)})`);
    }
  }
  for (const key of ['evalSteps', 'saveSteps', 'saveTotalLimit', 'warmupSteps'] as const) {
    if (!Number.isInteger(args[key]) || args[key] < 0) {
      throw new LoraforgeError(
        `${key} must be a whole number >= 0 (got ${JSON.stringify(args[key])})`,
      );
    }
  }
  if (!(args.learningRate >= 0))
    throw new LoraforgeError(`learningRate must be >= 0 (got ${args.learningRate})`);
  if (!(args.numTrainEpochs > 0) && !(args.maxSteps > 0)) {
    throw new LoraforgeError('set numTrainEpochs > 0 or maxSteps > 0');
  }
  if (!SCHEDULE_NAMES.includes(args.lrSchedulerType)) {
    throw new LoraforgeError(
      `unknown lr scheduler '${args.lrSchedulerType}'`,
      `use one of: ${SCHEDULE_NAMES.join(', ')}`,
    );
  }
  return args;
}
