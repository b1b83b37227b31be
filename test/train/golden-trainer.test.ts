import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { finalAdapterDiffs, goldenSteps, relDiff, trainGolden } from './golden-data.ts';
import { TINY } from '../helpers.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

forEachCpuBackend(() => {
  let model: DecoderModel;
  before(async () => {
    model = loadModel(TINY);
  });

  test('10 LoRA steps reproduce the Hugging Face Trainer log and final adapter', async () => {
    const out = mkdtempSync(join(tmpdir(), 'lf-train-'));
    const logs = await trainGolden(model, out);
    const golden = goldenSteps();
    assert.equal(logs.length, 10);
    golden.forEach((g, i) => {
      assert.ok(
        relDiff(logs[i]!.loss!, g.loss) < 1e-4,
        `step ${i + 1} loss ${logs[i]!.loss} vs ${g.loss}`,
      );
      assert.ok(
        relDiff(logs[i]!.grad_norm!, g.grad_norm) < 1e-4,
        `step ${i + 1} grad norm ${logs[i]!.grad_norm} vs ${g.grad_norm}`,
      );
      assert.ok(Math.abs(logs[i]!.lr! - g.lr_after_scheduler_step) < 1e-12, `step ${i + 1} lr`);
    });
    for (const { name, maxAbs } of finalAdapterDiffs(out))
      assert.ok(maxAbs < 1e-4, `${name}: max abs ${maxAbs}`);
    rmSync(out, { recursive: true, force: true });
  });
});
