import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { listCheckpoints, readCheckpoint } from '../../src/train/checkpoint-files.ts';
import { useCpuBackend } from '../helpers.ts';
import { TRAIN, resumedVsStraight } from './golden-data.ts';

let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(join(TRAIN, '..'));
});

test('6 steps, then resume to 10, gives the same adapter as 10 straight steps', async () => {
  for (const { name, maxAbs } of await resumedVsStraight(model)) assert.equal(maxAbs, 0, name);
});

test('killing the trainer while it writes checkpoints leaves the last checkpoint loadable', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lf-kill-'));
  const fixture = join(import.meta.dirname, '..', 'fixtures', 'train', 'train-forever.ts');
  for (const delayMs of [2500, 3100, 3700]) {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, out], { stdio: 'ignore' });
    // Wait until it has checkpointed at least once, then kill it at an arbitrary moment.
    const start = Date.now();
    while (listCheckpoints(out).length === 0 && Date.now() - start < 60_000)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, delayMs - 2500));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const checkpoints = listCheckpoints(out);
    assert.ok(checkpoints.length > 0, 'a checkpoint survives');
    for (const { path } of checkpoints) {
      readCheckpoint(path);
      loadAdapter(path, model).dispose();
    }
    assert.ok(
      readdirSync(out).every(
        (f) => !f.startsWith('checkpoint-') || checkpoints.some((c) => c.path.endsWith(f)),
      ),
    );
  }
  rmSync(out, { recursive: true, force: true });
});
