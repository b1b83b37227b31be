/**
 * Checkpoint folders `<outputDir>/checkpoint-<step>/`, laid out like HF Trainer's:
 *
 *   trainer_state.json       step, epoch, rng and data-loader state, log history, best metric
 *   optimizer.safetensors    AdamW moments (`<param>.exp_avg`, `<param>.exp_avg_sq`), step count in metadata
 *   ...                      whatever the caller adds (the adapter files, via `writeExtra`)
 *
 * A folder is built under a temporary name and renamed into place, so a `checkpoint-<step>`
 * folder that exists is always complete; resuming never sees half a checkpoint.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { removeDirAtomic, writeDirAtomic, writeFileAtomic } from '../io/atomic.ts';
import { parseJsonChecked, readTextChecked, READ_LIMITS } from '../io/safe-read.ts';
import {
  SafetensorsFile,
  bytesToF32,
  writeSafetensors,
  type TensorData,
} from '../io/safetensors.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { MetricsRecord } from './metrics.ts';
import type { AdamWStateDict } from './optimizer.ts';
import type { RngState } from '../util/rng.ts';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
const OPTIMIZER_META_KEY = 'loraforge_adamw';
const CHECKPOINT_NAME = /^checkpoint-(\d+)$/;
// Left behind by writeDirAtomic / removeDirAtomic when a process died writing or deleting one.
const STALE_TEMP_NAME = /^\.checkpoint-\d+\.tmp-(\d+)-\d+(\.old)?$/;

/** Contents of trainer_state.json; field names follow HF's trainer_state.json where they overlap. */
export interface TrainerState {
  /** Optimizer steps completed. */
  global_step: number;
  /** Fractional epochs completed (HF convention: 1.5 = halfway through the second epoch). */
  epoch: number;
  rng_state: RngState;
  /** Data loader position (epoch order, batch index ...), opaque to this module. */
  data_state: unknown;
  log_history: MetricsRecord[];
  best_metric: number | null;
  best_model_checkpoint: string | null;
  /** Anything else the trainer wants back on resume (e.g. the training config). */
  [key: string]: unknown;
}

export interface CheckpointEntry {
  step: number;
  path: string;
}

export function checkpointDirName(step: number): string {
  if (!Number.isInteger(step) || step < 0)
    throw new Error(`checkpoint step must be a non-negative integer, got ${step}`);
  return `checkpoint-${step}`;
}

/** Complete checkpoints in `outputDir`, oldest (lowest step) first; [] when the folder is absent. */
export function listCheckpoints(outputDir: string): CheckpointEntry[] {
  if (!existsSync(outputDir)) return [];
  const entries: CheckpointEntry[] = [];
  for (const name of readdirSync(outputDir)) {
    const match = CHECKPOINT_NAME.exec(name);
    const path = join(outputDir, name);
    if (match && statSync(path).isDirectory() && existsSync(join(path, TRAINER_STATE_FILE))) {
      entries.push({ step: Number(match[1]), path });
    }
  }
  return entries.sort((a, b) => a.step - b.step);
}

/** Path of the checkpoint with the highest step, or undefined when there is none. */
export function latestCheckpoint(outputDir: string): string | undefined {
  return listCheckpoints(outputDir).at(-1)?.path;
}

export interface WriteCheckpointOptions {
  trainerState: TrainerState;
  optimizer: AdamWStateDict;
  /** Writes further files (adapter weights, config) into the folder being built. */
  writeExtra?: (dir: string) => void;
  /** HF save_total_limit: keep at most this many checkpoints (undefined / 0 = keep all). */
  saveTotalLimit?: number;
}

/** Writes `checkpoint-<global_step>/` atomically, then rotates old checkpoints; returns its path. */
export function writeCheckpoint(outputDir: string, options: WriteCheckpointOptions): string {
  const { trainerState, optimizer } = options;
  const path = join(outputDir, checkpointDirName(trainerState.global_step));
  removeStaleTemps(outputDir);
  writeDirAtomic(path, (dir) => {
    mkdirSync(dir, { recursive: true });
    writeFileAtomic(join(dir, TRAINER_STATE_FILE), `${JSON.stringify(trainerState, null, 2)}\n`);
    writeOptimizerState(join(dir, OPTIMIZER_FILE), optimizer);
    options.writeExtra?.(dir);
  });
  if (options.saveTotalLimit) {
    rotateCheckpoints(outputDir, options.saveTotalLimit, [
      path,
      trainerState.best_model_checkpoint,
    ]);
  }
  return path;
}

/**
 * Deletes the oldest checkpoints until at most `limit` remain, never touching the `protect`ed
 * paths (the one just written, the best one); like HF, keeping the best can leave limit + 1.
 * Returns the deleted paths.
 */
export function rotateCheckpoints(
  outputDir: string,
  limit: number,
  protect: readonly (string | null | undefined)[] = [],
): string[] {
  if (!Number.isInteger(limit) || limit < 1)
    throw new LoraforgeError(`save_total_limit must be a positive integer, got ${limit}`);
  const kept = new Set(protect.filter((p): p is string => !!p).map((p) => resolve(p)));
  const checkpoints = listCheckpoints(outputDir);
  const deletable = checkpoints.filter((c) => !kept.has(resolve(c.path)));
  const deleted: string[] = [];
  let remaining = checkpoints.length;
  for (const c of deletable) {
    if (remaining <= limit) break;
    // A plain recursive delete killed halfway would leave a `checkpoint-N` that looks complete
    // (trainer_state.json still there) but has lost its optimizer or adapter files.
    removeDirAtomic(c.path);
    deleted.push(c.path);
    remaining--;
  }
  return deleted;
}

export interface LoadedCheckpoint {
  path: string;
  trainerState: TrainerState;
  optimizer: AdamWStateDict;
}

/** Reads the trainer state and optimizer state of one checkpoint folder. */
export function readCheckpoint(path: string): LoadedCheckpoint {
  const trainerState = readTrainerState(path);
  return { path, trainerState, optimizer: readOptimizerState(join(path, OPTIMIZER_FILE)) };
}

/** trainer_state.json of one checkpoint folder (cheap: no tensors). */
export function readTrainerState(path: string): TrainerState {
  const statePath = join(path, TRAINER_STATE_FILE);
  if (!existsSync(statePath)) {
    throw new LoraforgeError(
      `${path} is not a loraforge checkpoint (no ${TRAINER_STATE_FILE})`,
      'pass a checkpoint-<step> folder from an output dir',
    );
  }
  const trainerState = parseJsonChecked(
    readTextChecked(statePath, { maxBytes: READ_LIMITS.config }),
    statePath,
  ) as TrainerState;
  if (!Number.isInteger(trainerState?.global_step) || trainerState.global_step < 0) {
    throw new LoraforgeError(`${statePath}: missing or invalid global_step`);
  }
  return trainerState;
}

/** Saves AdamW state as F32 tensors of shape [n] plus its JSON metadata. */
export function writeOptimizerState(path: string, state: AdamWStateDict): void {
  const tensors: Record<string, TensorData> = {};
  for (const [name, data] of Object.entries(state.tensors))
    tensors[name] = { dtype: 'F32', shape: [data.length], data };
  writeSafetensors(path, tensors, {
    format: 'pt',
    [OPTIMIZER_META_KEY]: JSON.stringify(state.meta),
  });
}

export function readOptimizerState(path: string): AdamWStateDict {
  if (!existsSync(path)) throw new LoraforgeError(`optimizer state not found: ${path}`);
  const file = SafetensorsFile.open(path);
  try {
    const metaJson = file.metadata[OPTIMIZER_META_KEY];
    if (metaJson === undefined)
      throw new LoraforgeError(
        `${path}: not a loraforge optimizer state (no '${OPTIMIZER_META_KEY}' metadata)`,
      );
    const meta = parseJsonChecked(metaJson, `${path} metadata`) as AdamWStateDict['meta'];
    const tensors: Record<string, Float32Array> = {};
    for (const name of file.names()) {
      const info = file.info(name);
      if (info.dtype !== 'F32')
        throw new LoraforgeError(`${path}: tensor '${name}' is ${info.dtype}, expected F32`);
      tensors[name] = bytesToF32(info.dtype, file.read(name), name);
    }
    return { tensors, meta };
  } finally {
    file.close();
  }
}

function removeStaleTemps(outputDir: string): void {
  if (!existsSync(outputDir)) return;
  for (const name of readdirSync(outputDir)) {
    const match = STALE_TEMP_NAME.exec(name);
    // A temp folder of this very process could belong to a write still in progress.
    if (match && Number(match[1]) !== process.pid)
      rmSync(join(outputDir, name), { recursive: true, force: true });
  }
}
