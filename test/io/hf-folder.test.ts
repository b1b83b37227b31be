import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listWeightFiles, readModelConfig, readModelFolder } from '../../src/io/hf-folder.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { GOLDEN as GOLDEN_ROOT } from '../helpers.ts';

const GOLDEN = `${GOLDEN_ROOT}/qwen2-tiny`;

function rejects(fn: () => unknown, pattern: RegExp, hintPattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LoraforgeError, String(err));
    assert.match(err.message, pattern);
    if (hintPattern) assert.match(err.hint ?? '', hintPattern);
    return true;
  });
}

test('reads the golden model folder', () => {
  const folder = readModelFolder(GOLDEN);
  assert.equal(folder.config.model_type, 'qwen2');
  assert.equal(folder.config.vocab_size, 1000);
  assert.deepEqual(folder.generationConfig, {
    _from_model_config: true,
    transformers_version: '4.44.0.dev0',
  });
  assert.deepEqual(folder.weightFiles, [join(GOLDEN, 'model.safetensors')]);
});

test('explains folders that are not model folders', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loraforge-folder-'));
  try {
    rejects(() => readModelConfig(join(dir, 'nope')), /nope: no such folder/);
    rejects(
      () => readModelConfig(join(GOLDEN, 'config.json')),
      /is a file, expected a model folder/,
    );
    rejects(() => readModelConfig(dir), /not a model folder \(no config\.json\)/);
    rejects(
      () => readModelConfig(join(GOLDEN, 'lora/adapter_randB')),
      /no config\.json/,
      /LoRA adapter folder/,
    );

    writeFileSync(join(dir, 'config.json'), '{"model_type": "qwen2",}');
    rejects(() => readModelConfig(dir), /config\.json: invalid JSON/);
    writeFileSync(join(dir, 'config.json'), '{"model_type": "qwen2"}');
    writeFileSync(join(dir, 'pytorch_model.bin'), '');
    rejects(() => readModelFolder(dir), /no model\.safetensors/, /safe_serialization/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('lists the shards of a sharded folder and reports missing ones', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loraforge-folder-'));
  try {
    mkdirSync(join(dir, 'm'));
    const weightMap = {
      a: 'model-00002-of-00002.safetensors',
      b: 'model-00001-of-00002.safetensors',
      c: 'model-00001-of-00002.safetensors',
    };
    writeFileSync(
      join(dir, 'm', 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: weightMap }),
    );
    writeFileSync(join(dir, 'm', 'model-00001-of-00002.safetensors'), '');
    rejects(
      () => listWeightFiles(join(dir, 'm')),
      /lists model-00002-of-00002\.safetensors, which is missing/,
    );
    writeFileSync(join(dir, 'm', 'model-00002-of-00002.safetensors'), '');
    assert.deepEqual(listWeightFiles(join(dir, 'm')), [
      join(dir, 'm', 'model-00001-of-00002.safetensors'),
      join(dir, 'm', 'model-00002-of-00002.safetensors'),
    ]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
