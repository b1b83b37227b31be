/** 200 forward + backward steps leave memory flat: scopes release every activation and gradient. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { backward } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { loadModel } from '../../src/models/load.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { makeRandomChatModel, useCpuBackend } from '../helpers.ts';

test('200 LoRA training steps of a layer stack keep allocated bytes and RSS flat', async () => {
  const backend = await useCpuBackend();
  const dir = mkdtempSync(join(tmpdir(), 'lf-mem-'));
  const model = loadModel(await makeRandomChatModel(dir));
  const adapter = LoraAdapter.create(model, makeLoraConfig({ loraDropout: 0 }), 0);
  adapter.attach(model);
  adapter.setTrainable(true);
  const [batch, seq] = [4, 32];
  const ids = Int32Array.from({ length: batch * seq }, (_, i) => 1 + ((i * 31) % 2000));
  const labels = ids.map((id, i) => (i % seq < 8 ? -100 : id));
  const step = () => {
    tidy(() => backward(model.loss({ batch, seq, inputIds: ids }, labels).loss));
    for (const [, t] of adapter.namedParameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
  };
  for (let i = 0; i < 10; i++) step();
  const bytesAfterWarmup = backend.allocatedBytes();
  const rssAfterWarmup = process.memoryUsage().rss;
  for (let i = 0; i < 200; i++) step();
  assert.equal(backend.allocatedBytes(), bytesAfterWarmup, 'every tensor of a step is freed');
  const growth = process.memoryUsage().rss - rssAfterWarmup;
  assert.ok(growth < 32 * 2 ** 20, `RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB`);
  adapter.dispose();
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});
