// The architecture families beyond qwen2 against their Hugging Face golden packages (same layout
// and tolerances as qwen2-tiny) on the CPU; test/webgpu/golden-families.test.ts runs the same on
// WebGPU.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { FAMILY_GOLDENS } from '../helpers.ts';
import { assertGoldenPackage, mergeErrors } from './golden-package.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

forEachCpuBackend(() => {
  for (const { name, dir } of FAMILY_GOLDENS) {
    describe(name, () => {
      let model: DecoderModel;
      before(() => {
        model = loadModel(dir);
      });
      for (const check of ['forward', 'generate', 'lora', 'train'] as const) {
        test(`${check} matches transformers`, () => assertGoldenPackage(model, dir, check));
      }
      test('merge matches PEFT merge_and_unload', async () => {
        const errors = await mergeErrors(model, dir);
        console.log(`# merge ${JSON.stringify(errors)}`);
        assert.ok(errors.weights < 1e-6, `weights ${errors.weights}`);
        assert.ok(errors.unmergedLogits < 1e-4 && errors.mergedLogits < 1e-4);
      });
    });
  }
});
