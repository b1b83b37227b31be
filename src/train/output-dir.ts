/**
 * The output_dir of a training run, before the first step: locked against a second trainer,
 * refused when it holds something else (unless overwrite_output_dir, or this run is resuming),
 * and a checkpoint to resume from checked to belong to this run's config.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { removeDirAtomic } from '../io/atomic.ts';
import { lockFolder, LOCK_FILE, type FolderLock } from '../io/folder-lock.ts';
import { checkOutputFolder, folderContents } from '../io/output-folder.ts';
import { LoraforgeError } from '../util/errors.ts';
import { latestCheckpoint, listCheckpoints, readTrainerState } from './checkpoint-files.ts';
import type { TrainConfig } from './config.ts';

/** Config keys that make two runs the same run: parameter shapes, data and its order, dropout. */
const RUN_KEYS = [
  'model',
  'finetuning_type',
  'lora_rank',
  'lora_alpha',
  'lora_target',
  'use_rslora',
  'lora_dropout',
  'dataset',
  'dataset_format',
  'columns',
  'set',
  'template',
  'cutoff_len',
  'val_size',
  'train_on_prompt',
  'packing',
  'group_by_length',
  'per_device_train_batch_size',
  'gradient_accumulation_steps',
  'seed',
] as const satisfies readonly (keyof TrainConfig)[];

/** Recorded in every checkpoint's trainer_state.json as `run_config`. */
export function runFingerprint(cfg: TrainConfig): Record<string, unknown> {
  return Object.fromEntries(RUN_KEYS.map((key) => [key, cfg[key] ?? null]));
}

/** Throws unless the checkpoint at `path` was written by a run with this fingerprint. */
export function checkCheckpointBelongs(path: string, fingerprint: Record<string, unknown>): void {
  const recorded = readTrainerState(path).run_config as Record<string, unknown> | undefined;
  if (!recorded) return; // written before fingerprints existed: nothing to compare
  const differing = Object.keys(fingerprint).filter(
    (key) => JSON.stringify(recorded[key] ?? null) !== JSON.stringify(fingerprint[key]),
  );
  if (differing.length === 0) return;
  const [first] = differing as [string];
  throw new LoraforgeError(
    `${path} belongs to a different run: ${first} is ${JSON.stringify(recorded[first])} there, ` +
      `${JSON.stringify(fingerprint[first])} here` +
      (differing.length > 1 ? ` (and ${differing.slice(1).join(', ')} differ)` : ''),
    'resume with the settings of that run, or train into a new output_dir (or pass --overwrite-output-dir to start over there)',
  );
}

export interface PreparedOutputDir {
  lock: FolderLock;
  /** The checkpoint to resume from (resolved from "latest"), or undefined for a fresh start. */
  resumeFrom?: string;
}

/** Locks output_dir and decides between resuming, starting fresh, and refusing. */
export function prepareOutputDir(cfg: TrainConfig): PreparedOutputDir {
  const dir = cfg.output_dir;
  folderContents(dir); // throws when output_dir is a file
  const lock = lockFolder(dir);
  try {
    const fingerprint = runFingerprint(cfg);
    const asked = cfg.resume_from_checkpoint;
    const resumeFrom = asked === 'latest' ? latestCheckpoint(dir) : asked;
    if (resumeFrom) {
      if (!existsSync(resumeFrom))
        throw new LoraforgeError(`resume_from_checkpoint: ${resumeFrom} does not exist`);
      checkCheckpointBelongs(resumeFrom, fingerprint);
      return { lock, resumeFrom };
    }
    checkOutputFolder(dir, {
      overwrite: cfg.overwrite_output_dir,
      overwriteFlag: '--overwrite-output-dir',
      ignore: (name) => name === LOCK_FILE,
      // A Hub id is no folder of the user's; a local model folder is never written over.
      sources: existsSync(cfg.model) ? { model: cfg.model } : {},
    });
    // Starting over: an old run's checkpoints must never be resumed into this one, and its
    // adapter must not be half-replaced (the final save commits adapter_config.json last).
    for (const { path } of listCheckpoints(dir)) removeDirAtomic(path);
    for (const file of ['adapter_config.json', 'config.json']) removeIfOurs(dir, file);
    return { lock };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** Removes an earlier run's config file: only one beside the weights a training run writes. */
function removeIfOurs(dir: string, file: string): void {
  const weights = ['adapter_model.safetensors', 'model.safetensors'];
  if (weights.some((w) => existsSync(join(dir, w)))) rmSync(join(dir, file), { force: true });
}
