/** output_dir: never another run's or the user's files lost, one trainer at a time, atomic final save. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs, {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { before, mock, test } from 'node:test';
import { LOCK_FILE, lockFolder } from '../../src/io/folder-lock.ts';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { writeCheckpoint } from '../../src/train/checkpoint-files.ts';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.ts';
import { prepareOutputDir, runFingerprint } from '../../src/train/output-dir.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { readGolden, useCpuBackend } from '../helpers.ts';
import { TRAIN, trainGolden } from './golden-data.ts';

const root = mkdtempSync(join(tmpdir(), 'lf-outdir-'));
let n = 0;
const fresh = () => join(root, `run-${n++}`);

function config(outputDir: string, extra: Record<string, unknown> = {}): TrainConfig {
  return resolveTrainConfig([
    {
      values: { model: 'org/model', dataset: 'data.json', output_dir: outputDir, ...extra },
      source: 'test',
    },
  ]);
}

const loraforgeError = (pattern: RegExp) => (err: Error) =>
  err instanceof LoraforgeError && pattern.test(err.message);

let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(join(TRAIN, '..'));
});

test('train refuses a non-empty output_dir and leaves it untouched', () => {
  const dir = fresh();
  mkdirSync(dir);
  writeFileSync(join(dir, 'README.md'), 'my notes');
  assert.throws(() => prepareOutputDir(config(dir)), loraforgeError(/not empty/));
  assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), 'my notes');
  assert.ok(!existsSync(join(dir, LOCK_FILE)), 'the lock is released after a refusal');
});

test('overwrite_output_dir drops an earlier run (checkpoints, adapter config) and keeps user files', () => {
  const dir = fresh();
  mkdirSync(dir);
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  writeFileSync(join(dir, 'adapter_config.json'), '{}');
  writeFileSync(join(dir, 'adapter_model.safetensors'), 'old');
  writeOldCheckpoint(dir, 5, runFingerprint(config(dir, { lora_rank: 4 })));
  const { lock, resumeFrom } = prepareOutputDir(config(dir, { overwrite_output_dir: true }));
  lock.release();
  assert.equal(resumeFrom, undefined);
  assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine');
  assert.ok(!existsSync(join(dir, 'checkpoint-5')));
  assert.ok(!existsSync(join(dir, 'adapter_config.json')));
});

test('an output_dir that is a file is one clear error', () => {
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  assert.throws(() => prepareOutputDir(config(file)), loraforgeError(/is a file/));
});

test("two trainers cannot share an output_dir; a dead one's lock is taken over", () => {
  const dir = fresh();
  const first = prepareOutputDir(config(dir));
  assert.throws(
    () => prepareOutputDir(config(dir)),
    loraforgeError(new RegExp(`in use by another loraforge run \\(pid ${process.pid} on`)),
  );
  first.lock.release();
  // A lock left by a process that has exited is stale.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  writeFileSync(
    join(dir, LOCK_FILE),
    JSON.stringify({ pid: dead, host: hostname(), started: '2020-01-01T00:00:00Z' }),
  );
  const lock = lockFolder(dir);
  assert.match(readFileSync(join(dir, LOCK_FILE), 'utf8'), new RegExp(`"pid":${process.pid}`));
  lock.release();
  assert.ok(!existsSync(join(dir, LOCK_FILE)));
});

test('a half-written lock is respected while fresh and taken over once old', () => {
  const dir = fresh();
  mkdirSync(dir);
  const lockPath = join(dir, LOCK_FILE);
  writeFileSync(lockPath, '');
  assert.throws(() => lockFolder(dir), loraforgeError(/is in use by another loraforge run$/));
  utimesSync(lockPath, new Date(2020, 0, 1), new Date(2020, 0, 1));
  const lock = lockFolder(dir);
  assert.deepEqual(readdirSync(dir), [LOCK_FILE], 'no file moved aside is left');
  lock.release();
});

function writeOldCheckpoint(dir: string, step: number, runConfig: Record<string, unknown>): void {
  writeCheckpoint(dir, {
    trainerState: {
      global_step: step,
      epoch: 1,
      rng_state: { seed: 1, counter: 0 } as never,
      data_state: {},
      log_history: [],
      best_metric: null,
      best_model_checkpoint: null,
      run_config: runConfig,
    },
    optimizer: { tensors: {}, meta: {} as never },
  });
}

test('resume latest: a checkpoint of another config is refused by name; the same config resumes', () => {
  const dir = fresh();
  writeOldCheckpoint(dir, 3, runFingerprint(config(dir, { lora_rank: 4 })));
  assert.throws(
    () => prepareOutputDir(config(dir, { resume_from_checkpoint: 'latest', lora_rank: 16 })),
    loraforgeError(/checkpoint-3 belongs to a different run: lora_rank is 4 there, 16 here/),
  );
  const same = prepareOutputDir(
    config(dir, { resume_from_checkpoint: 'latest', lora_rank: 4, max_steps: 99 }),
  );
  same.lock.release();
  assert.equal(same.resumeFrom, join(dir, 'checkpoint-3'));
});

test('the final save keeps a user README.md', async () => {
  const dir = fresh();
  mkdirSync(dir);
  writeFileSync(join(dir, 'README.md'), '# my project');
  await trainGolden(model, dir, { args: { maxSteps: 1 } });
  assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), '# my project');
  loadAdapter(dir, model).dispose();
});

test('a crash at any point of the final save leaves the old adapter or the new one', async () => {
  const dir = fresh();
  await trainGolden(model, dir, { args: { maxSteps: 1 } });
  const old = readFileSync(join(dir, 'adapter_model.safetensors'));
  const reference = fresh();
  await trainGolden(model, reference, { args: { maxSteps: 2 } });
  const next = readFileSync(join(reference, 'adapter_model.safetensors'));
  for (let survive = 0; survive < 6; survive++) {
    let renamesIntoDir = 0;
    const realRename = fs.renameSync;
    mock.method(fs, 'renameSync', (from: fs.PathLike, to: fs.PathLike) => {
      if (dirname(String(to)) === dir && renamesIntoDir++ === survive)
        throw new Error('simulated crash');
      realRename(from, to);
    });
    syncBuiltinESMExports();
    try {
      await trainGolden(model, dir, { args: { maxSteps: 2 } }).catch(() => undefined);
    } finally {
      mock.restoreAll();
      syncBuiltinESMExports();
    }
    const weights = readFileSync(join(dir, 'adapter_model.safetensors'));
    assert.ok(weights.equals(old) || weights.equals(next), `after ${survive} renames`);
    loadAdapter(dir, model).dispose();
    readGolden(join(dir, 'adapter_model.safetensors'));
  }
});
