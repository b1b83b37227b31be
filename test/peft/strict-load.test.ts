/** No adapter is half-applied: tensor-list mismatches, pickles and unsupported fields are refused by name. */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import {
  encodeSafetensors,
  SafetensorsFile,
  type NamedTensorData,
} from '../../src/io/safetensors.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { parsePeftConfig } from '../../src/peft/peft-json.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { useCpuBackend } from '../helpers.ts';
import { baseOf, PEFT_FIXTURES } from './peft-fixtures.ts';

before(async () => {
  await useCpuBackend();
});

/** A copy of a fixture adapter whose tensor list went through `edit`. */
function editedAdapter(
  name: string,
  edit: (tensors: NamedTensorData[]) => NamedTensorData[],
): string {
  const dir = mkdtempSync(join(tmpdir(), 'lf-strict-'));
  copyFileSync(join(PEFT_FIXTURES, name, 'adapter_config.json'), join(dir, 'adapter_config.json'));
  const file = SafetensorsFile.open(join(PEFT_FIXTURES, name, 'adapter_model.safetensors'));
  const tensors = file.names().map((n): NamedTensorData => {
    const info = file.info(n);
    return { name: n, dtype: info.dtype, shape: info.shape, data: file.read(n) };
  });
  file.close();
  writeFileSync(
    join(dir, 'adapter_model.safetensors'),
    Buffer.concat(encodeSafetensors(edit(tensors))),
  );
  return dir;
}

const Q0 = 'base_model.model.model.layers.0.self_attn.q_proj';

test('a missing tensor is refused with its name', () => {
  const dir = editedAdapter('suffix-targets', (ts) =>
    ts.filter((t) => t.name !== `${Q0}.lora_B.weight`),
  );
  assert.throws(
    () => loadAdapter(dir, baseOf('suffix-targets')),
    (e: Error) => {
      assert.ok(e instanceof LoraforgeError);
      assert.match(
        e.message,
        /missing base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight; unexpected none/,
      );
      return true;
    },
  );
});

test('a stray tensor is refused with its name', () => {
  const dir = editedAdapter('suffix-targets', (ts) => [
    ...ts,
    { ...ts[0]!, name: 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight' },
  ]);
  assert.throws(
    () => loadAdapter(dir, baseOf('suffix-targets')),
    /missing none; unexpected base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight/,
  );
});

test('a renamed tensor is refused naming both lists', () => {
  const dir = editedAdapter('suffix-targets', (ts) =>
    ts.map((t) => (t.name === `${Q0}.lora_A.weight` ? { ...t, name: `${Q0}.lora_X.weight` } : t)),
  );
  assert.throws(
    () => loadAdapter(dir, baseOf('suffix-targets')),
    /missing .*q_proj\.lora_A\.weight; unexpected .*q_proj\.lora_X\.weight/,
  );
});

test('bias "all" tensors are required: dropping one is refused', () => {
  const dir = editedAdapter('bias-all', (ts) => ts.filter((t) => !t.name.endsWith('k_proj.bias')));
  assert.throws(
    () => loadAdapter(dir, baseOf('bias-all')),
    /missing .*layers\.0\.self_attn\.k_proj\.bias/,
  );
});

test('adapter_model.bin is refused by name with how to convert it, never unpickled', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lf-bin-'));
  copyFileSync(
    join(PEFT_FIXTURES, 'rslora', 'adapter_config.json'),
    join(dir, 'adapter_config.json'),
  );
  writeFileSync(join(dir, 'adapter_model.bin'), 'not read');
  assert.throws(
    () => loadAdapter(dir, baseOf('rslora')),
    (e: Error) => {
      assert.match(e.message, /adapter_model\.bin is a PyTorch pickle/);
      assert.match((e as LoraforgeError).hint ?? '', /save_file/);
      return true;
    },
  );
});

const config = (): Record<string, unknown> =>
  JSON.parse(readFileSync(join(PEFT_FIXTURES, 'rslora', 'adapter_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;

test('every field of PEFT 0.18.1 that PEFT writes is understood', () => {
  const parsed = parsePeftConfig(config(), 'adapter_config.json');
  assert.equal(parsed.useRslora, true);
});

for (const [field, value, message] of [
  ['fan_in_fan_out', true, /fan_in_fan_out = true is not supported/],
  ['lora_bias', true, /lora_bias = true is not supported/],
  ['use_qalora', true, /use_qalora = true/],
  ['layer_replication', [[0, 1]], /layer_replication = \[\[0,1\]\]/],
  ['trainable_token_indices', [1, 2], /trainable_token_indices/],
  ['alora_invocation_tokens', [5], /alora_invocation_tokens/],
  ['init_lora_weights', 'pissa_niter_4', /init_lora_weights "pissa_niter_4"/],
  ['init_lora_weights', 'corda', /init_lora_weights "corda"/],
  ['init_lora_weights', 'loftq', /init_lora_weights "loftq"/],
  ['modules_to_save', ['score'], /modules_to_save "score" is not supported/],
  ['task_type', 'SEQ_CLS', /task_type = "SEQ_CLS"/],
  ['some_future_option', 3, /unknown field some_future_option = 3/],
] as const) {
  test(`adapter_config.json ${field} = ${JSON.stringify(value)} is refused by name`, () => {
    assert.throws(
      () => parsePeftConfig({ ...config(), [field]: value }, 'adapter_config.json'),
      message,
    );
  });
}

test('an unknown field holding an empty value (a newer PEFT default) is accepted', () => {
  assert.doesNotThrow(() => parsePeftConfig({ ...config(), some_future_option: null }, 'x'));
});
