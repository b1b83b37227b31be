/**
 * Adapters loraforge creates for each trainable option are saved exactly as PEFT 0.18.1 saves the
 * same config (adapter_config.json fields and values, tensor names and shapes, checked against the
 * PEFT-made fixtures) and reload identically.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { loadAdapter, saveAdapter } from '../../src/peft/io.ts';
import { parsePeftConfig } from '../../src/peft/peft-json.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff, useCpuBackend } from '../helpers.ts';
import { baseOf, expectedOf, PEFT_FIXTURES, promptLogits } from './peft-fixtures.ts';

before(async () => {
  await useCpuBackend();
});

const readJson = (path: string) =>
  JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

function tensorShapes(dir: string): Record<string, number[]> {
  const file = SafetensorsFile.open(join(dir, 'adapter_model.safetensors'));
  const out = Object.fromEntries(file.names().map((n) => [n, [...file.info(n).shape]]));
  file.close();
  return out;
}

/** target_modules is a set in PEFT: compare lists without order. */
function normalized(config: Record<string, unknown>): Record<string, unknown> {
  const t = config.target_modules;
  return {
    ...config,
    base_model_name_or_path: null,
    target_modules: Array.isArray(t) ? [...t].sort() : t,
  };
}

for (const name of [
  'suffix-targets',
  'regex-lm-head',
  'bias-all',
  'modules-to-save-lm-head',
  'modules-to-save-embed',
  'patterns',
  'layers-to-transform',
  'exclude-modules',
  'dora',
  'rslora',
]) {
  test(`a loraforge-made "${name}" adapter is saved as PEFT saves it and reloads identically`, async () => {
    const model = baseOf(name);
    const fixture = join(PEFT_FIXTURES, name);
    const peftConfig = readJson(join(fixture, 'adapter_config.json'));
    const config = parsePeftConfig(peftConfig, name);
    if (name === 'regex-lm-head') config.targetModules = '.*\\.(q_proj|v_proj)'; // no lm_head training
    const adapter = LoraAdapter.create(model, config, 7);
    const rng = new Rng(3);
    for (const [, t] of adapter.namedParameters()) {
      const values = t.hostF32();
      for (let i = 0; i < values.length; i++) values[i]! += 0.1 * rng.normal(0, 1);
    }
    const dir = join(mkdtempSync(join(tmpdir(), 'lf-rt-')), 'adapter');
    await saveAdapter(dir, adapter);
    if (name !== 'regex-lm-head') {
      assert.deepEqual(
        normalized(readJson(join(dir, 'adapter_config.json'))),
        normalized(peftConfig),
      );
      assert.deepEqual(tensorShapes(dir), tensorShapes(fixture));
    }
    const prompt = expectedOf(name).prompt;
    adapter.attach(model);
    const before = promptLogits(model, prompt);
    LoraAdapter.detach(model);
    const reloaded = loadAdapter(dir, model);
    reloaded.attach(model);
    const after = promptLogits(model, prompt);
    LoraAdapter.detach(model);
    assert.equal(maxAbsDiff(before, after), 0);
    adapter.dispose();
    reloaded.dispose();
  });
}

test('train targets given as dotted suffixes adapt every matching module', () => {
  const model = baseOf('suffix-targets');
  const adapter = LoraAdapter.create(
    model,
    makeLoraConfig({ targetModules: ['self_attn.q_proj'] }),
  );
  assert.deepEqual(
    [...adapter.modules.keys()],
    ['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj'],
  );
  adapter.dispose();
});

test('train targets that match nothing are an error listing the linear modules', () => {
  const model = baseOf('suffix-targets');
  assert.throws(
    () => LoraAdapter.create(model, makeLoraConfig({ targetModules: ['attn.q'] })),
    (e: Error & { hint?: string }) => {
      assert.match(e.message, /target_modules \["attn\.q"\] matches no module/);
      assert.match(
        e.hint ?? '',
        /q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head/,
      );
      return true;
    },
  );
});

for (const name of ['pissa', 'olora']) {
  test(`a ${name} adapter trained by loraforge reloads on the original base as PEFT would`, async () => {
    const { loadModel } = await import('../../src/models/load.ts');
    const baseDir = join(PEFT_FIXTURES, 'base-tied');
    const prompt = expectedOf(name).prompt;
    const model = loadModel(baseDir, { dtype: 'f32' });
    const original = promptLogits(model, prompt);
    const peftConfig = readJson(join(PEFT_FIXTURES, name, 'adapter_config.json'));
    const adapter = LoraAdapter.create(model, parsePeftConfig(peftConfig, name));
    adapter.attach(model);
    // Residual base + s·B₀·A₀ is the original model.
    assert.ok(maxAbsDiff(promptLogits(model, prompt), original) <= 1e-5);
    const rng = new Rng(4);
    for (const [, t] of adapter.namedParameters()) {
      const values = t.hostF32();
      for (let i = 0; i < values.length; i++) values[i]! += 0.05 * rng.normal(0, 1);
    }
    const trained = promptLogits(model, prompt);
    assert.ok(maxAbsDiff(trained, original) > 1e-2, 'training moved the model');
    const dir = join(mkdtempSync(join(tmpdir(), 'lf-residual-')), 'adapter');
    await saveAdapter(dir, adapter);
    assert.deepEqual(
      normalized(readJson(join(dir, 'adapter_config.json'))),
      normalized(peftConfig),
    );
    assert.deepEqual(tensorShapes(dir), tensorShapes(join(PEFT_FIXTURES, name)));
    adapter.dispose();
    model.dispose();
    const fresh = loadModel(baseDir, { dtype: 'f32' });
    const reloaded = loadAdapter(dir, fresh);
    reloaded.attach(fresh);
    const diff = maxAbsDiff(promptLogits(fresh, prompt), trained);
    assert.ok(diff <= 1e-5, `reloaded ${name} logits differ by ${diff}`);
    reloaded.dispose();
    fresh.dispose();
  });
}
