/**
 * Projections that read the same input (q, k, v; gate, up; Phi-3's fused ones) are loaded back to
 * back as one group, and decoding one token multiplies each group in one product. Its outputs must
 * equal projecting one by one, and any projection that is no longer its stored self (an adapter,
 * a replaced weight) must take the group off that path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Backend } from '../../src/engine/backend.ts';
import { noGrad } from '../../src/engine/tape.ts';
import { Tensor, tidy } from '../../src/engine/tensor.ts';
import type { DecoderLayer, DecoderModel } from '../../src/models/decoder.ts';
import { KVCache } from '../../src/models/kv-cache.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { TINY_CHAT_SHAPE, maxAbsDiff, useCpuBackend } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'lf-groups-'));
let backend: Backend;
before(async () => {
  backend = await useCpuBackend();
});
after(() => rmSync(root, { recursive: true, force: true }));

function randomModel(name: string, architecture: string): DecoderModel {
  const dir = join(root, name);
  writeRandomModel(
    dir,
    { ...TINY_CHAT_SHAPE, architectures: [architecture], rope_theta: 10000 },
    { seed: 5, std: 0.5 },
  );
  return loadModel(dir, { dtype: 'bf16' });
}

/** Logits of decoding token 9 after a 5-token prompt, and the GEMM calls of that decode step. */
function decodeStep(model: DecoderModel): { logits: Float32Array; gemms: number } {
  const cache = new KVCache(model.config, 1, 16);
  const inputIds = Int32Array.of(3, 14, 15, 92, 65);
  noGrad(() => tidy(() => model.forwardHidden({ batch: 1, seq: 5, inputIds }, cache)));
  const kernels = backend.kernels as { gemm: Backend['kernels']['gemm'] };
  const gemm = kernels.gemm;
  let gemms = 0;
  kernels.gemm = (...args) => {
    gemms++;
    return gemm.apply(kernels, args);
  };
  try {
    const logits = noGrad(() =>
      tidy(() => model.logits(model.forwardDecode([9], [cache])).readSync() as Float32Array),
    );
    return { logits, gemms };
  } finally {
    kernels.gemm = gemm;
  }
}

/** decodeStep with the layers' groups hidden: every projection on its own. */
function decodeUngrouped(model: DecoderModel): { logits: Float32Array; gemms: number } {
  const saved = model.layers.map((layer) => layer.groups);
  for (const layer of model.layers) delete layer.groups;
  try {
    return decodeStep(model);
  } finally {
    model.layers.forEach((layer, i) => (layer.groups = saved[i]));
  }
}

/**
 * Decodes with and without the groups: the same logits, and `groupedGemms` GEMM calls against
 * one per projection (7 a layer) + the LM head. Returns the grouped logits.
 */
function assertGroupedEqualsAlone(model: DecoderModel, groupedGemms: number): Float32Array {
  const grouped = decodeStep(model);
  const alone = decodeUngrouped(model);
  assert.equal(grouped.gemms, groupedGemms);
  assert.equal(alone.gemms, 2 * 7 + 1);
  assert.ok(maxAbsDiff(grouped.logits, alone.logits) < 1e-5);
  return grouped.logits;
}

function storageOf(layer: DecoderLayer, name: keyof DecoderLayer['proj']) {
  return (layer.proj[name]!.weight as Tensor).storage;
}

test('q, k, v and gate, up are stored as groups and decoded in one product each', () => {
  const model = randomModel('qwen2', 'Qwen2ForCausalLM');
  for (const layer of model.layers) {
    assert.deepEqual(
      layer.groups?.map((g) => g.names),
      [
        ['q_proj', 'k_proj', 'v_proj'],
        ['gate_proj', 'up_proj'],
      ],
    );
    assert.equal(storageOf(layer, 'k_proj'), storageOf(layer, 'q_proj'));
    assert.equal(storageOf(layer, 'up_proj'), storageOf(layer, 'gate_proj'));
    assert.notEqual(storageOf(layer, 'o_proj'), storageOf(layer, 'q_proj'));
  }
  // Per layer: qkv, o, gate+up, down (4) against q, k, v, o, gate, up, down (7); + the LM head.
  assertGroupedEqualsAlone(model, 2 * 4 + 1);
  model.dispose();
});

test('a projection whose weight was replaced takes its group off the one-product path', () => {
  const model = randomModel('qwen2-replaced', 'Qwen2ForCausalLM');
  const before = decodeStep(model).logits;
  const k = model.layers[0]!.proj.k_proj!;
  const original = k.weight as Tensor;
  const values = new Float32Array(original.size).map((_, i) => Math.sin(i));
  k.weight = Tensor.from(values, original.shape).keep();
  const grouped = assertGroupedEqualsAlone(model, 2 * 4 + 1 + 2); // layer 0's q, k, v one by one
  assert.ok(maxAbsDiff(grouped, before) > 1e-3, 'the new k_proj weight is used');
  k.weight.dispose();
  k.weight = original;
  model.dispose();
});

test("Phi-3's fused projections decode as one product, not one per block", () => {
  const model = randomModel('phi3', 'Phi3ForCausalLM');
  assert.deepEqual(
    model.layers[0]!.groups?.map((g) => g.names),
    [['qkv_proj'], ['gate_up_proj']],
  );
  assertGroupedEqualsAlone(model, 2 * 4 + 1);
  model.dispose();
});
