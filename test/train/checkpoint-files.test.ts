import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  OPTIMIZER_FILE,
  TRAINER_STATE_FILE,
  latestCheckpoint,
  listCheckpoints,
  readCheckpoint,
  rotateCheckpoints,
  writeCheckpoint,
  type TrainerState,
} from '../../src/train/checkpoint-files.ts';
import { AdamW } from '../../src/train/optimizer.ts';
import { Rng } from '../../src/util/rng.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'loraforge-ckpt-'));

function state(step: number, extra: Partial<TrainerState> = {}): TrainerState {
  return {
    global_step: step,
    epoch: step / 10,
    rng_state: new Rng(step).state(),
    data_state: { epoch: 0, batchIndex: step * 2 },
    log_history: [{ step, loss: 1 / step }],
    best_metric: null,
    best_model_checkpoint: null,
    ...extra,
  };
}

function optimizerAfterSteps(n: number): AdamW {
  const params = [
    {
      name: 'a.lora_A',
      data: Float32Array.of(0.5, -0.25, 1),
      grad: Float32Array.of(0.1, 0.2, -0.3),
    },
  ];
  const opt = new AdamW(params, { weightDecay: 0.01 });
  for (let i = 0; i < n; i++) opt.step(1e-3);
  return opt;
}

test('writeCheckpoint writes trainer state, optimizer state and extra files; readCheckpoint restores them', () => {
  const out = tmp();
  const opt = optimizerAfterSteps(3);
  const path = writeCheckpoint(out, {
    trainerState: state(30),
    optimizer: opt.stateDict(),
    writeExtra: (dir) => writeFileSync(join(dir, 'adapter_config.json'), '{}'),
  });
  assert.equal(path, join(out, 'checkpoint-30'));
  assert.deepEqual(readdirSync(path).sort(), [
    'adapter_config.json',
    OPTIMIZER_FILE,
    TRAINER_STATE_FILE,
  ]);
  const loaded = readCheckpoint(path);
  assert.deepEqual(loaded.trainerState, state(30));
  assert.deepEqual(loaded.optimizer, opt.stateDict());

  const fresh = optimizerAfterSteps(0);
  fresh.loadStateDict(loaded.optimizer);
  assert.equal(fresh.stepCount, 3);
  assert.deepEqual(readdirSync(out), ['checkpoint-30']); // no temp folders left behind
});

test('listCheckpoints sorts numerically and ignores incomplete or foreign folders; latestCheckpoint', () => {
  const out = tmp();
  assert.deepEqual(listCheckpoints(join(out, 'missing')), []);
  assert.equal(latestCheckpoint(out), undefined);
  for (const step of [100, 20, 3])
    writeCheckpoint(out, {
      trainerState: state(step),
      optimizer: optimizerAfterSteps(1).stateDict(),
    });
  mkdirSync(join(out, 'checkpoint-999')); // no trainer_state.json: not a checkpoint
  mkdirSync(join(out, 'checkpoint-final'));
  writeFileSync(join(out, 'checkpoint-5'), 'a file');
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [3, 20, 100],
  );
  assert.equal(latestCheckpoint(out), join(out, 'checkpoint-100'));
});

test('save_total_limit deletes the oldest checkpoints but never the new or the best one', () => {
  const out = tmp();
  const opt = optimizerAfterSteps(1).stateDict();
  writeCheckpoint(out, { trainerState: state(10), optimizer: opt, saveTotalLimit: 2 });
  writeCheckpoint(out, { trainerState: state(20), optimizer: opt, saveTotalLimit: 2 });
  writeCheckpoint(out, { trainerState: state(30), optimizer: opt, saveTotalLimit: 2 });
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [20, 30],
  );

  const best = join(out, 'checkpoint-20');
  writeCheckpoint(out, {
    trainerState: state(40, { best_model_checkpoint: best, best_metric: 0.5 }),
    optimizer: opt,
    saveTotalLimit: 1,
  });
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [20, 40],
  );

  // A protected checkpoint survives even when it is the oldest.
  assert.deepEqual(rotateCheckpoints(out, 1, [join(out, 'checkpoint-20')]), [
    join(out, 'checkpoint-40'),
  ]);
  assert.throws(() => rotateCheckpoints(out, 0), LoraforgeError);
});

test('temp folders of a crashed earlier process are cleaned up on the next save', () => {
  const out = tmp();
  const stale = join(out, '.checkpoint-7.tmp-999999999-1700000000000');
  mkdirSync(stale, { recursive: true });
  writeCheckpoint(out, { trainerState: state(8), optimizer: optimizerAfterSteps(1).stateDict() });
  assert.equal(existsSync(stale), false);
});

test('readCheckpoint: clear errors for a folder that is not a checkpoint or has a bad state file', () => {
  const out = tmp();
  assert.throws(() => readCheckpoint(out), /not a loraforge checkpoint/);
  writeFileSync(join(out, TRAINER_STATE_FILE), '{"global_step": -1}');
  assert.throws(() => readCheckpoint(out), /global_step/);
  writeFileSync(join(out, TRAINER_STATE_FILE), '{');
  assert.throws(() => readCheckpoint(out), LoraforgeError);
  writeFileSync(join(out, TRAINER_STATE_FILE), JSON.stringify(state(1)));
  assert.throws(() => readCheckpoint(out), /optimizer state not found/);
});
