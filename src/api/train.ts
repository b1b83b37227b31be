/**
 * Training from a program with the same keys (and defaults, and checks) as `loraforge train`'s
 * YAML file: `await train({ model, dataset, output_dir, max_steps: 50 })`.
 */
import { resolveTrainConfig, type TrainConfig } from '../train/config.ts';
import { runTraining, type RunHooks, type RunResult } from '../train/run.ts';

/** The training keys (TrainConfig); `model` and `dataset` are required, the rest have defaults. */
export type TrainOptions = Partial<TrainConfig> & Pick<TrainConfig, 'model' | 'dataset'>;

/**
 * Fine-tunes `options.model` on `options.dataset` (LoRA by default) and writes the adapter,
 * checkpoints and metrics to `options.output_dir`. Options are validated like the config file's.
 */
export function train(options: TrainOptions, hooks: RunHooks = {}): Promise<RunResult> {
  return runTraining(resolveTrainConfig([{ values: options, source: 'train() options' }]), hooks);
}
