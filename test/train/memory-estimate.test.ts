// The --dry-run memory estimate against measured allocations: weights exactly as loaded (dense and
// quantized), and a training step's activations with and without gradient checkpointing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Backend } from '../../src/engine/backend.ts';
import { backward } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { loadDecoderConfig, loadModel } from '../../src/models/load.ts';
import { quantizationFromOptions } from '../../src/models/quantization-options.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { loraConfigFromOptions } from '../../src/peft/config.ts';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.ts';
import { estimateTrainingMemory, formatMemoryEstimate } from '../../src/train/memory-estimate.ts';
import { useCpuBackend } from '../helpers.ts';

let backend: Backend;
const root = mkdtempSync(join(tmpdir(), 'lf-estimate-'));
const dir = join(root, 'model');
before(async () => {
  backend = await useCpuBackend();
  writeRandomModel(dir, {
    architectures: ['Qwen2ForCausalLM'],
    vocab_size: 512,
    hidden_size: 128,
    intermediate_size: 384,
    num_hidden_layers: 6,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    tie_word_embeddings: true,
  });
  // The CPU's GEMM packing scratch is allocated once, on first use: not a step's memory.
  measure(config({}));
});
after(() => rmSync(root, { recursive: true, force: true }));

function config(values: Record<string, unknown>): TrainConfig {
  return resolveTrainConfig([
    {
      values: {
        model: dir,
        dataset: 'unused.json',
        lora_target: 'all-linear',
        lora_dropout: 0,
        per_device_train_batch_size: 4,
        cutoff_len: 64,
        ...values,
      },
      source: 'test',
    },
  ]);
}

/** Bytes the model holds once loaded, and the peak above that of one LoRA step. */
function measure(cfg: TrainConfig): { weights: number; step: number } {
  const start = backend.allocatedBytes();
  const model = loadModel(dir, { quantization: quantizationFromOptions(cfg) });
  const weights = backend.allocatedBytes() - start;
  const adapter = LoraAdapter.create(model, loraConfigFromOptions(cfg), 0);
  adapter.attach(model);
  adapter.setTrainable(true);
  model.gradientCheckpointing = cfg.gradient_checkpointing;
  const [batch, seq] = [cfg.per_device_train_batch_size, cfg.cutoff_len];
  const ids = Int32Array.from({ length: batch * seq }, (_, i) => 1 + ((i * 37) % 500));
  const before = backend.allocatedBytes();
  let peak = before;
  const { alloc } = backend;
  backend.alloc = (bytes) => {
    const storage = alloc.call(backend, bytes);
    peak = Math.max(peak, backend.allocatedBytes());
    return storage;
  };
  try {
    tidy(() => backward(model.loss({ batch, seq, inputIds: ids }, ids).loss));
  } finally {
    backend.alloc = alloc;
  }
  adapter.dispose();
  model.dispose();
  return { weights, step: peak - before };
}

for (const values of [
  { quantization: 'none' },
  { quantization: 'nf4', bnb_4bit_use_double_quant: true },
  { quantization: 'int8', gradient_checkpointing: true },
]) {
  test(`memory estimate vs measured: ${JSON.stringify(values)}`, () => {
    const cfg = config(values);
    const estimate = estimateTrainingMemory(loadDecoderConfig(dir), cfg);
    const measured = measure(cfg);
    const weights = estimate.weights.reduce((sum, w) => sum + w.bytes, 0);
    const step =
      estimate.tokensPerStep *
        (estimate.activationBytesPerToken + estimate.recomputeBytesPerToken) +
      estimate.lmHeadBytes;
    console.log(
      `# ${JSON.stringify(values)}\n${formatMemoryEstimate(estimate).replace(/^/gm, '# ')}`,
    );
    console.log(
      `# measured: weights ${measured.weights} B, step ${measured.step} B (estimate ${step} B)`,
    );
    assert.ok(
      Math.abs(weights - measured.weights) <= 0.01 * measured.weights,
      `weights ${weights} vs ${measured.weights}`,
    );
    assert.ok(
      Math.abs(step - measured.step) <= 0.15 * measured.step,
      `step ${step} vs ${measured.step}`,
    );
  });
}
