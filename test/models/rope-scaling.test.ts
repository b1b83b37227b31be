/**
 * A random tiny Llama with rope_scaling: the scaled frequency table reaches prefill, KV-cache
 * decoding and training. Linear scaling by 2 at positions 2t is exactly the unscaled model at
 * positions t (the table halves every frequency, a power of two), forward and backward.
 */
import { denseWeight } from '../../src/engine/quant/quantized-weight.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { backward, noGrad } from '../../src/engine/tape.ts';
import { tidy, type Tensor } from '../../src/engine/tensor.ts';
import { parseDecoderConfig } from '../../src/models/config.ts';
import { DecoderModel, type ModelInput } from '../../src/models/decoder.ts';
import { KVCache } from '../../src/models/kv-cache.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { maxAbsDiff, useCpuBackend } from '../helpers.ts';

const LLAMA3_SCALING = {
  rope_type: 'llama3',
  factor: 8.0,
  low_freq_factor: 1.0,
  high_freq_factor: 4.0,
  // Small, so that a dozen positions already turn the scaled pairs noticeably.
  original_max_position_embeddings: 64,
};

/** Llama-3.2-shaped in miniature, with head_dim 16 where hidden / heads would be 8. */
const RAW = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 96,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  max_position_embeddings: 512,
  rope_theta: 10000.0,
  rope_scaling: LLAMA3_SCALING,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
};

let dir: string;
let llama3: DecoderModel;
/** The same weights under another rope_scaling. */
const withScaling = (rope_scaling: unknown): DecoderModel =>
  new DecoderModel(
    parseDecoderConfig({ ...RAW, rope_scaling }),
    llama3.embed,
    llama3.layers,
    llama3.finalNorm,
    llama3.lmHead,
  );

before(async () => {
  await useCpuBackend();
  dir = mkdtempSync(join(tmpdir(), 'loraforge-rope-'));
  writeRandomModel(dir, RAW, { seed: 7, std: 0.3 });
  llama3 = loadModel(dir);
});
after(() => {
  llama3?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const SEQ = 12;
const IDS = Int32Array.from({ length: SEQ }, (_, i) => (i * 37 + 5) % RAW.vocab_size);

function logits(model: DecoderModel, input: ModelInput): Float32Array {
  return noGrad(() =>
    tidy(() => model.logits(model.forwardHidden(input)).readSync() as Float32Array),
  );
}

test('the config scaling changes the logits', () => {
  assert.equal(llama3.config.ropeScaling?.type, 'llama3');
  assert.equal(llama3.config.headDim, 16);
  const input = { batch: 1, seq: SEQ, inputIds: IDS };
  const diff = maxAbsDiff(logits(llama3, input), logits(withScaling(null), input));
  assert.ok(diff > 1e-2, `llama3 vs unscaled logits differ by only ${diff}`);
});

test('linear scaling by 2 at positions 2t equals the unscaled model at positions t', () => {
  const linear = withScaling({ type: 'linear', factor: 2.0 });
  const positions = Int32Array.from({ length: SEQ }, (_, t) => 3 + t);
  const doubled = positions.map((p) => 2 * p);
  const plain = logits(withScaling(null), {
    batch: 1,
    seq: SEQ,
    inputIds: IDS,
    positionIds: positions,
  });
  const scaled = logits(linear, { batch: 1, seq: SEQ, inputIds: IDS, positionIds: doubled });
  assert.equal(maxAbsDiff(scaled, plain), 0);
  // ... and differs from the unscaled model at the doubled positions.
  const unscaledDoubled = logits(withScaling(null), {
    batch: 1,
    seq: SEQ,
    inputIds: IDS,
    positionIds: doubled,
  });
  assert.ok(maxAbsDiff(scaled, unscaledDoubled) > 1e-2);
});

test('KV-cache prefill and decode steps use the scaled frequencies', () => {
  const full = logits(llama3, { batch: 1, seq: SEQ, inputIds: IDS });
  const vocab = RAW.vocab_size;
  const prompt = SEQ - 3;
  const cache = new KVCache(llama3.config, 1, SEQ);
  try {
    const prefill = noGrad(() =>
      tidy(() => {
        const h = llama3.forwardHidden(
          { batch: 1, seq: prompt, inputIds: IDS.slice(0, prompt) },
          cache,
        );
        return llama3.logits(h, [prompt - 1]).readSync() as Float32Array;
      }),
    );
    const last = (t: number) => full.subarray(t * vocab, (t + 1) * vocab);
    assert.ok(maxAbsDiff(prefill, last(prompt - 1)) < 1e-5);
    for (let t = prompt; t < SEQ; t++) {
      const step = noGrad(() =>
        tidy(() => llama3.logits(llama3.forwardDecode([IDS[t]!], [cache])).readSync()),
      ) as Float32Array;
      const diff = maxAbsDiff(step, last(t));
      assert.ok(diff < 1e-5, `decode step at position ${t}: max diff ${diff}`);
    }
  } finally {
    cache.dispose();
  }
});

test('training gradients go through the scaled frequencies', () => {
  // Gradients of q_proj / k_proj (the rotated projections) under linear scaling by 2 at
  // positions 2t equal the unscaled ones at positions t; with the default table in the backward
  // they would not.
  const labels = Int32Array.from(IDS, (id, t) => (t < 3 ? -100 : id));
  const positions = Int32Array.from({ length: SEQ }, (_, t) => t);
  const weights = [
    llama3.layers[0]!.proj.q_proj!.weight,
    llama3.layers[1]!.proj.k_proj!.weight,
  ].map((w) => denseWeight(w, 'test'));
  const grads = (model: DecoderModel, positionIds: Int32Array): Float32Array[] => {
    for (const w of weights) w.requiresGrad = true;
    tidy(() =>
      backward(model.loss({ batch: 1, seq: SEQ, inputIds: IDS, positionIds }, labels).loss),
    );
    return weights.map((w: Tensor) => {
      const g = w.grad!.readSync() as Float32Array;
      w.grad!.dispose();
      w.grad = null;
      w.requiresGrad = false;
      return g;
    });
  };
  const plain = grads(withScaling(null), positions);
  const scaled = grads(
    withScaling({ type: 'linear', factor: 2.0 }),
    positions.map((p) => 2 * p),
  );
  const other = grads(
    withScaling(null),
    positions.map((p) => 2 * p),
  );
  weights.forEach((_, i) => {
    assert.ok(Math.max(...plain[i]!.map(Math.abs)) > 1e-4, 'a gradient to compare');
    assert.ok(maxAbsDiff(scaled[i]!, plain[i]!) < 1e-6, `weight ${i}`);
    assert.ok(maxAbsDiff(other[i]!, plain[i]!) > 1e-4, `weight ${i}: positions matter`);
  });
});
