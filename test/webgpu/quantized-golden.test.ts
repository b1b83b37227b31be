// QLoRA on the golden qwen2-tiny, WebGPU: the checks of test/models/quantized-golden.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import { maxAbsDiff, relativeError, TINY } from '../helpers.ts';
import {
  dequantizedFirst,
  goldenLogits,
  goldenLoraGrads,
  QUANTIZED_CASES,
} from '../models/quantized-golden.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const setup = await useWebGpuBackend();

for (const { type, doubleQuant } of QUANTIZED_CASES) {
  test(
    `webgpu: qwen2-tiny ${type}: logits and LoRA gradients of the dequantized-first model`,
    { skip: setup.skip },
    async () => {
      const quantized = loadModel(TINY, { quantization: { type, doubleQuant } });
      const reference = dequantizedFirst(type, doubleQuant);
      const diff = maxAbsDiff(await goldenLogits(quantized), await goldenLogits(reference));
      assert.ok(diff < 1e-4, `logits: max abs diff ${diff}`);
      const few = maxAbsDiff(
        await goldenLogits(quantized, true),
        await goldenLogits(reference, true),
      );
      assert.ok(few < 1e-4, `logits of 6 tokens: max abs diff ${few}`);
      const want = await goldenLoraGrads(reference);
      const got = await goldenLoraGrads(quantized);
      for (const [name, grad] of want) {
        const err = relativeError(got.get(name)!, grad);
        assert.ok(err < 1e-4, `${name}: relative error ${err}`);
      }
      quantized.dispose();
      reference.dispose();
    },
  );
}
