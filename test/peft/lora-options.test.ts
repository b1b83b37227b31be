import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loraConfigFromOptions } from '../../src/peft/config.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';

const config = (values: Record<string, unknown>) =>
  loraConfigFromOptions(
    resolveTrainConfig([{ values: { model: 'm', dataset: 'd', ...values }, source: 'flags' }]),
  );

test('train keys map onto PEFT LoraConfig fields', () => {
  const c = config({
    lora_target: 'self_attn.q_proj, mlp.up_proj',
    lora_exclude: 'model.layers.0.self_attn.q_proj',
    lora_layers: '0,1',
    lora_rank_pattern: 'q_proj=4',
    lora_alpha_pattern: 'up_proj=32',
    use_dora: true,
    use_rslora: true,
    lora_bias: 'all',
    additional_target: 'lm_head',
    lora_init: 'gaussian',
  });
  assert.deepEqual(c.targetModules, ['self_attn.q_proj', 'mlp.up_proj']);
  assert.deepEqual(c.excludeModules, ['model.layers.0.self_attn.q_proj']);
  assert.deepEqual(c.layersToTransform, [0, 1]);
  assert.deepEqual(c.rankPattern, { q_proj: 4 });
  assert.deepEqual(c.alphaPattern, { up_proj: 32 });
  assert.equal(c.useDora, true);
  assert.equal(c.useRslora, true);
  assert.equal(c.bias, 'all');
  assert.deepEqual(c.modulesToSave, ['lm_head']);
  assert.equal(c.init, 'gaussian');
  assert.equal(config({}).targetModules, 'all-linear');
  assert.equal(config({ lora_init: 'pissa' }).init, 'pissa');
});

for (const [values, message] of [
  [{ lora_init: 'pissa_niter_4' }, /lora_init must be one of .*pissa_niter_4/],
  [{ lora_init: 'loftq' }, /lora_init must be one of .*loftq/],
  [{ lora_bias: 'lora_only' }, /lora_bias must be one of none, all .*lora_only/],
  [{ lora_layers: 'first' }, /lora_layers: "first" is not a layer index/],
  [{ lora_rank_pattern: 'q_proj=0' }, /lora_rank_pattern: q_proj=0/],
  [{ additional_target: 'model.norm' }, /modules_to_save "model.norm" is not supported/],
] as const) {
  test(`train config ${JSON.stringify(values)} is refused by name`, () => {
    assert.throws(() => config(values), message);
  });
}
