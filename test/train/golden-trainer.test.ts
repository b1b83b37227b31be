import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import type { MetricsRecord } from '../../src/train/metrics.ts';
import { Trainer } from '../../src/train/trainer.ts';
import { FixedBatches, goldenArgs, goldenBatches, TRAIN } from './golden-data.ts';
import { TINY, readGolden, relativeError, useCpuBackend } from '../helpers.ts';

let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(TINY);
});

test('10 LoRA steps reproduce the Hugging Face Trainer log and final adapter', async () => {
  const out = mkdtempSync(join(tmpdir(), 'lf-train-'));
  const adapter = loadAdapter(join(TRAIN, 'adapter_init'), model);
  adapter.attach(model);
  const logs: MetricsRecord[] = [];
  const trainer = new Trainer({
    model,
    adapter,
    train: new FixedBatches(goldenBatches()),
    args: goldenArgs(out),
    progress: false,
    log: () => {},
    onLog: (r) => logs.push(r),
  });
  await trainer.train();
  const golden = JSON.parse(readFileSync(join(TRAIN, 'train_log.json'), 'utf8')).steps as {
    loss: number;
    grad_norm: number;
    lr_after_scheduler_step: number;
  }[];
  assert.equal(logs.length, 10);
  golden.forEach((g, i) => {
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
    assert.ok(rel(logs[i]!.loss!, g.loss) < 1e-4, `step ${i + 1} loss ${logs[i]!.loss} vs ${g.loss}`);
    assert.ok(rel(logs[i]!.grad_norm!, g.grad_norm) < 1e-4, `step ${i + 1} grad norm ${logs[i]!.grad_norm} vs ${g.grad_norm}`);
    assert.ok(Math.abs(logs[i]!.lr! - g.lr_after_scheduler_step) < 1e-12, `step ${i + 1} lr`);
  });
  const final = readGolden(join(TRAIN, 'adapter_final', 'adapter_model.safetensors'));
  const mine = readGolden(join(out, 'adapter_model.safetensors'));
  for (const name of final.names()) {
    const a = mine.f32(name).data;
    const b = final.f32(name).data;
    let maxAbs = 0;
    for (let i = 0; i < a.length; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
    assert.ok(maxAbs < 1e-4, `${name}: max abs ${maxAbs} (relative ${relativeError(a, b)})`);
  }
  adapter.dispose();
  rmSync(out, { recursive: true, force: true });
});
