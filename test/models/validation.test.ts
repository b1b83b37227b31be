/** Insane config values and token ids are refused by name with the valid range. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { tidy } from '../../src/engine/tensor.ts';
import { parseDecoderConfig } from '../../src/models/config.ts';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { TINY, useCpuBackend } from '../helpers.ts';

const config = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8'));
let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(TINY);
});

const userError = (pattern: RegExp) => (err: Error) =>
  err instanceof LoraforgeError && pattern.test(err.message);

test('rms_norm_eps, rope_theta and sizes outside their ranges are refused with the range', () => {
  for (const [key, value, message] of [
    ['rms_norm_eps', -1, /"rms_norm_eps" must be greater than 0 and at most 1 \(got -1\)/],
    ['rms_norm_eps', 0, /"rms_norm_eps" must be greater than 0/],
    ['rms_norm_eps', 'tiny', /"rms_norm_eps" must be a number/],
    ['rope_theta', -5, /"rope_theta" must be greater than 0 and at most 1000000000000 \(got -5\)/],
    ['vocab_size', 2 ** 40, /"vocab_size" must be at least 1 and at most 10000000/],
    ['num_hidden_layers', 100_000, /"num_hidden_layers" must be at least 1 and at most 1000/],
  ] as const) {
    assert.throws(() => parseDecoderConfig({ ...config, [key]: value }), userError(message), key);
  }
  parseDecoderConfig(config); // the real one passes
});

test('a token id beyond the vocabulary is a clear error, not a memory fault', () => {
  const vocab = model.config.vocabSize;
  for (const bad of [vocab, -1, 2 ** 30]) {
    const inputIds = Int32Array.from([1, 2, bad, 3]);
    assert.throws(
      () => tidy(() => model.forwardHidden({ batch: 1, seq: 4, inputIds })),
      userError(
        new RegExp(
          `token id ${bad} \\(at position 2\\) is outside the model's vocabulary \\(ids 0 to ${vocab - 1}\\)`,
        ),
      ),
    );
  }
});
