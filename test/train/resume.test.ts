import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { listCheckpoints, readCheckpoint } from '../../src/train/checkpoint-files.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { maxAbsDiff, readGolden, useCpuBackend } from '../helpers.ts';
import { FixedBatches, TRAIN, goldenArgs, goldenBatches } from './golden-data.ts';

let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(join(TRAIN, '..'));
});

async function run(outputDir: string, opts: { stopAt?: number; resume?: boolean } = {}): Promise<void> {
  const adapter = loadAdapter(join(TRAIN, 'adapter_init'), model);
  adapter.attach(model);
  const trainer: Trainer = new Trainer({
    model,
    adapter,
    train: new FixedBatches(goldenBatches()),
    args: goldenArgs(outputDir, { resumeFromCheckpoint: opts.resume, saveSteps: 3 }),
    progress: false,
    log: () => {},
    onLog: (r) => {
      if (r.step === opts.stopAt) trainer.requestStop();
    },
  });
  await trainer.train();
  adapter.dispose();
}

test('6 steps, then resume to 10, gives the same adapter as 10 straight steps', async () => {
  const straight = mkdtempSync(join(tmpdir(), 'lf-straight-'));
  const resumed = mkdtempSync(join(tmpdir(), 'lf-resumed-'));
  await run(straight);
  await run(resumed, { stopAt: 6 });
  assert.ok(existsSync(join(resumed, 'checkpoint-6')), 'the stop saved checkpoint-6');
  assert.ok(!existsSync(join(resumed, 'adapter_model.safetensors')), 'no final adapter after a stop');
  await run(resumed, { resume: true });
  const a = readGolden(join(straight, 'adapter_model.safetensors'));
  const b = readGolden(join(resumed, 'adapter_model.safetensors'));
  for (const name of a.names()) assert.equal(maxAbsDiff(a.f32(name).data, b.f32(name).data), 0, name);
  rmSync(straight, { recursive: true, force: true });
  rmSync(resumed, { recursive: true, force: true });
});

test('killing the trainer while it writes checkpoints leaves the last checkpoint loadable', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lf-kill-'));
  const fixture = join(import.meta.dirname, '..', 'fixtures', 'train', 'train-forever.ts');
  for (const delayMs of [2500, 3100, 3700]) {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, out], { stdio: 'ignore' });
    // Wait until it has checkpointed at least once, then kill it at an arbitrary moment.
    const start = Date.now();
    while (listCheckpoints(out).length === 0 && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, delayMs - 2500));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const checkpoints = listCheckpoints(out);
    assert.ok(checkpoints.length > 0, 'a checkpoint survives');
    for (const { path } of checkpoints) {
      readCheckpoint(path);
      loadAdapter(path, model).dispose();
    }
    assert.ok(readdirSync(out).every((f) => !f.startsWith('checkpoint-') || checkpoints.some((c) => c.path.endsWith(f))));
  }
  rmSync(out, { recursive: true, force: true });
});
