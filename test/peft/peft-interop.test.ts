/**
 * Adapters made by real PEFT 0.18.1 (scripts/peft-fixtures/make_fixtures.py) for each LoraConfig
 * option: loraforge loads them with nothing left over and reproduces PEFT's logits and greedy ids.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { loadModel } from '../../src/models/load.ts';
import { maxAbsDiff, readGolden, useCpuBackend } from '../helpers.ts';
import {
  baseOf,
  CASES,
  doraMergeDiffs,
  expectedOf,
  greedy,
  greedyBatch,
  PEFT_FIXTURES,
  promptLogits,
} from './peft-fixtures.ts';

before(async () => {
  await useCpuBackend();
});

for (const name of CASES) {
  test(`PEFT adapter "${name}" loads exactly and reproduces PEFT's logits and greedy ids`, async () => {
    const model = baseOf(name);
    const expected = expectedOf(name);
    const adapter = loadAdapter(join(PEFT_FIXTURES, name), model);
    adapter.attach(model);
    try {
      const logits = promptLogits(model, expected.prompt);
      const ref = readGolden(join(PEFT_FIXTURES, name, 'expected.safetensors')).f32('logits').data;
      const diff = maxAbsDiff(logits, ref);
      assert.ok(diff <= 1e-5, `logits differ by ${diff}`);
      assert.deepEqual(
        await greedy(model, expected.prompt, expected.greedy.length),
        expected.greedy,
      );
    } finally {
      LoraAdapter.detach(model);
      adapter.dispose();
    }
  });
}

test('merging the PEFT DoRA adapter equals PEFT merge_and_unload', async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { mergeToFolder } = await import('../../src/peft/merge.ts');
  const model = baseOf('dora');
  const adapter = loadAdapter(join(PEFT_FIXTURES, 'dora'), model);
  const out = join(mkdtempSync(join(tmpdir(), 'lf-dora-merge-')), 'merged');
  await mergeToFolder(join(PEFT_FIXTURES, 'base-tied'), adapter, out);
  adapter.dispose();
  for (const [name, diff] of doraMergeDiffs(join(out, 'model.safetensors'))) {
    assert.ok(diff <= 1e-6, `${name}: ${diff}`);
  }
  const ref = readGolden(join(PEFT_FIXTURES, 'dora', 'expected.safetensors'));
  const mergedModel = loadModel(out, { dtype: 'f32' });
  const prompt = expectedOf('dora').prompt;
  const diff = maxAbsDiff(promptLogits(mergedModel, prompt), ref.f32('merged_logits').data);
  mergedModel.dispose();
  assert.ok(diff <= 1e-5, `merged logits differ by ${diff}`);
});

test('per-request adapters (the serve path) reproduce PEFT for every config, mixed in one batch', async () => {
  for (const name of CASES) {
    const model = baseOf(name);
    const expected = expectedOf(name);
    const adapter = loadAdapter(join(PEFT_FIXTURES, name), model);
    try {
      const lookup = adapter.lookup(model);
      const ref = readGolden(join(PEFT_FIXTURES, name, 'expected.safetensors')).f32('logits').data;
      const diff = maxAbsDiff(promptLogits(model, expected.prompt, lookup), ref);
      assert.ok(diff <= 1e-5, `${name}: per-row logits differ by ${diff}`);
      // The adapter's sequence decoded beside a base-model one, as the server batches them.
      const [withAdapter, base] = await greedyBatch(
        model,
        expected.prompt,
        expected.greedy.length,
        [lookup, null],
      );
      assert.deepEqual(withAdapter, expected.greedy, name);
      assert.deepEqual(base, await greedy(model, expected.prompt, expected.greedy.length), name);
    } finally {
      adapter.dispose();
    }
  }
});

test("merging the PEFT PiSSA adapter into the original base gives PEFT's logits", async () => {
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { mergeToFolder } = await import('../../src/peft/merge.ts');
  const adapter = loadAdapter(join(PEFT_FIXTURES, 'pissa'), baseOf('pissa'));
  const out = join(mkdtempSync(join(tmpdir(), 'lf-pissa-merge-')), 'merged');
  await mergeToFolder(join(PEFT_FIXTURES, 'base-tied'), adapter, out);
  adapter.dispose();
  const merged = loadModel(out, { dtype: 'f32' });
  const ref = readGolden(join(PEFT_FIXTURES, 'pissa', 'expected.safetensors')).f32('logits').data;
  const diff = maxAbsDiff(promptLogits(merged, expectedOf('pissa').prompt), ref);
  merged.dispose();
  assert.ok(diff <= 1e-5, `merged logits differ by ${diff}`);
});
