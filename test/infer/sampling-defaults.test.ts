/** Default sampling comes from generation_config.json, and explicit settings override it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Sampler } from '../../src/infer/sampling.ts';
import { resolveSampling, samplingDefaults } from '../../src/infer/sampling-defaults.ts';

test('no generation_config.json, or do_sample false: greedy, repetition penalty kept', () => {
  assert.equal(samplingDefaults(undefined).temperature, 0);
  const tiny = samplingDefaults({ do_sample: false, temperature: 0.7, max_new_tokens: 64 });
  assert.equal(tiny.temperature, 0);
  assert.equal(samplingDefaults({ repetition_penalty: 1.1 }).repetitionPenalty, 1.1);
});

test("Qwen2-Instruct's generation_config.json samples with its values", () => {
  const qwen = samplingDefaults({
    do_sample: true,
    temperature: 0.7,
    top_p: 0.8,
    top_k: 20,
    repetition_penalty: 1.05,
  });
  assert.deepEqual(qwen, { temperature: 0.7, topP: 0.8, topK: 20, repetitionPenalty: 1.05 });
  // transformers' own defaults fill what the file leaves out.
  assert.deepEqual(samplingDefaults({ do_sample: true }), {
    temperature: 1,
    topK: 50,
    topP: 1,
    repetitionPenalty: 1,
  });
});

test('explicit settings win one field at a time; undefined and non-sampling keys do not', () => {
  const defaults = samplingDefaults({ do_sample: true, temperature: 0.7, top_k: 20 });
  const requested = { temperature: 0, topK: undefined, maxNewTokens: 5 };
  const resolved = resolveSampling(defaults, requested);
  assert.equal(resolved.temperature, 0);
  assert.equal(resolved.topK, 20);
  assert.equal('maxNewTokens' in resolved, false);
});

test('presence and frequency penalties count generated tokens only', () => {
  const logits = () => Float32Array.from([3, 2.5, 0]);
  // Token 0 is in the prompt only: no penalty, greedy still picks it.
  assert.equal(new Sampler({ presencePenalty: 2 }).sample(logits(), [0], 1), 0);
  // Generated once: presence 1 brings 3 to 2 < 2.5.
  assert.equal(new Sampler({ presencePenalty: 1 }).sample(logits(), [0, 0], 1), 1);
  // Generated twice: frequency 0.3 per occurrence, 3 - 0.6 = 2.4 < 2.5.
  assert.equal(new Sampler({ frequencyPenalty: 0.3 }).sample(logits(), [1, 0, 0], 1), 1);
  assert.equal(new Sampler({ frequencyPenalty: 0.3 }).sample(logits(), [1, 0], 1), 0);
});
