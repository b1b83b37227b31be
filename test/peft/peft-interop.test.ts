/**
 * Adapters made by real PEFT 0.18.1 (scripts/peft-fixtures/make_fixtures.py) for each LoraConfig
 * option: loraforge loads them with nothing left over and reproduces PEFT's logits and greedy ids.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { maxAbsDiff, readGolden, useCpuBackend } from '../helpers.ts';
import { baseOf, CASES, expectedOf, greedy, PEFT_FIXTURES, promptLogits } from './peft-fixtures.ts';

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
