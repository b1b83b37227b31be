/**
 * Training the parts PEFT saves beside A and B (DoRA magnitudes, bias="all" biases, modules_to_save
 * copies): their gradients through the whole model match central differences of the loss.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { backward, noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { Rng } from '../../src/util/rng.ts';
import { useCpuBackend } from '../helpers.ts';
import { baseOf } from './peft-fixtures.ts';

before(async () => {
  await useCpuBackend();
});

test('DoRA magnitude, trained bias and modules_to_save gradients match finite differences', () => {
  const model = baseOf('modules-to-save-lm-head'); // untied embeddings
  const config = makeLoraConfig({
    targetModules: ['q_proj', 'v_proj'],
    loraDropout: 0,
    useDora: true,
    bias: 'all',
    modulesToSave: ['lm_head', 'embed_tokens'],
  });
  const adapter = LoraAdapter.create(model, config, 5);
  const rng = new Rng(9);
  for (const [, t] of adapter.namedParameters()) {
    const v = t.hostF32();
    for (let i = 0; i < v.length; i++) v[i]! += 0.05 * rng.normal(0, 1);
  }
  adapter.attach(model);
  adapter.setTrainable(true);
  const inputIds = Int32Array.from([5, 9, 17, 3, 44, 101, 7, 2]);
  const input = { batch: 1, seq: inputIds.length, inputIds };
  const labels = Int32Array.from([-100, 9, 17, 3, 44, 101, 7, 2]);
  const lossValue = () =>
    noGrad(() => tidy(() => (model.loss(input, labels).loss.readSync() as Float32Array)[0]!));
  tidy(() => backward(model.loss(input, labels).loss));
  const params = new Map(adapter.namedParameters());
  const checked = [
    'base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector',
    'base_model.model.model.layers.1.self_attn.v_proj.lora_magnitude_vector',
    'base_model.model.model.layers.0.self_attn.q_proj.base_layer.bias',
    'base_model.model.model.layers.1.self_attn.k_proj.bias',
    'base_model.model.lm_head.weight',
    'base_model.model.model.embed_tokens.weight',
  ];
  for (const name of checked) {
    const t = params.get(name)!;
    const grad = t.grad!.readSync() as Float32Array;
    const values = t.hostF32();
    // The largest-gradient entry, so the difference is well above f32 rounding of the loss.
    let i = 0;
    grad.forEach((g, j) => {
      if (Math.abs(g) > Math.abs(grad[i]!)) i = j;
    });
    const h = 1e-2;
    const keep = values[i]!;
    values[i] = keep + h;
    const up = lossValue();
    values[i] = keep - h;
    const down = lossValue();
    values[i] = keep;
    const numeric = (up - down) / (2 * h);
    assert.ok(Math.abs(grad[i]!) > 1e-4, `${name}: gradient ${grad[i]} is too small to check`);
    assert.ok(
      Math.abs(grad[i]! - numeric) <= 1e-4 + 2e-2 * Math.abs(numeric),
      `${name}[${i}]: analytic ${grad[i]} vs numeric ${numeric}`,
    );
  }
  LoraAdapter.detach(model);
  adapter.dispose();
});
