// QLoRA on the golden qwen2-tiny, on each CPU backend (wasm, native): quantized logits and LoRA
// gradients equal those of the model dequantized first (quantized-golden.ts), and quantization
// visibly changes the logits.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';
import { maxAbsDiff, readGolden, relativeError, TINY } from '../helpers.ts';
import {
  dequantizedFirst,
  goldenLogits,
  goldenLoraGrads,
  QUANTIZED_CASES,
} from './quantized-golden.ts';

forEachCpuBackend(() => {
  for (const { type, doubleQuant } of QUANTIZED_CASES) {
    test(`qwen2-tiny ${type}${doubleQuant ? ' (double quant)' : ''}: logits and LoRA gradients of the dequantized-first model`, async () => {
      const quantized = loadModel(TINY, { quantization: { type, doubleQuant } });
      const reference = dequantizedFirst(type, doubleQuant);
      const logits = await goldenLogits(quantized);
      const diff = maxAbsDiff(logits, await goldenLogits(reference));
      assert.ok(diff < 1e-4, `logits: max abs diff ${diff}`);
      const few = maxAbsDiff(
        await goldenLogits(quantized, true),
        await goldenLogits(reference, true),
      );
      assert.ok(few < 1e-4, `logits of 6 tokens: max abs diff ${few}`);
      const fromDense = maxAbsDiff(
        logits,
        readGolden(join(TINY, 'forward.safetensors')).f32('logits').data,
      );
      assert.ok(fromDense > 1e-3, `quantization changed the logits by only ${fromDense}`);

      const want = await goldenLoraGrads(reference);
      const got = await goldenLoraGrads(quantized);
      for (const [name, grad] of want) {
        const err = relativeError(got.get(name)!, grad);
        assert.ok(err < 1e-4, `${name}: relative error ${err}`);
      }
      quantized.dispose();
      reference.dispose();
    });
  }
});
