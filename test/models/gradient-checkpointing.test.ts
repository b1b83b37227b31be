// gradient_checkpointing: the same gradients bit for bit (LoRA dropout masks replayed in the
// recomputation, on a dense and on an NF4 base), and less activation memory, on each CPU backend.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Backend } from '../../src/engine/backend.ts';
import { backward } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel, type LoadModelOptions } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { Rng } from '../../src/util/rng.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

let backend: Backend;
const root = mkdtempSync(join(tmpdir(), 'lf-ckpt-'));
after(() => rmSync(root, { recursive: true, force: true }));

function randomModel(name: string, hidden: number, layers: number): string {
  const dir = join(root, name);
  writeRandomModel(
    dir,
    {
      architectures: ['Qwen2ForCausalLM'],
      vocab_size: 512,
      hidden_size: hidden,
      intermediate_size: 2 * hidden,
      num_hidden_layers: layers,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      tie_word_embeddings: true,
    },
    { seed: 3, std: 0.1 },
  );
  return dir;
}

interface Run {
  loss: number;
  grads: Map<string, Float32Array>;
  /** Largest allocatedBytes above the level before the step. */
  activationPeak: number;
}

/** One LoRA training step (dropout 0.1, seeded masks) with or without checkpointing. */
function step(model: DecoderModel, adapter: LoraAdapter, checkpointing: boolean): Run {
  const [batch, seq] = [4, 64];
  const ids = Int32Array.from({ length: batch * seq }, (_, i) => 1 + ((i * 37) % 500));
  const labels = ids.map((id, i) => (i % seq < 8 ? -100 : id));
  const rng = new Rng(11);
  model.dropoutSeeds = () => rng.nextU32();
  model.gradientCheckpointing = checkpointing;
  const start = backend.allocatedBytes();
  let peak = start;
  const { alloc } = backend;
  backend.alloc = (bytes) => {
    const storage = alloc.call(backend, bytes);
    peak = Math.max(peak, backend.allocatedBytes());
    return storage;
  };
  let loss = 0;
  try {
    tidy(() => {
      const result = model.loss({ batch, seq, inputIds: ids }, labels);
      backward(result.loss);
      loss = (result.loss.readSync() as Float32Array)[0]!;
    });
  } finally {
    backend.alloc = alloc;
  }
  const grads = new Map<string, Float32Array>();
  for (const [name, t] of adapter.namedParameters()) {
    grads.set(name, t.grad!.readSync() as Float32Array);
    t.grad!.dispose();
    t.grad = null;
  }
  return { loss, grads, activationPeak: peak - start };
}

function bothWays(dir: string, opts: LoadModelOptions): [Run, Run] {
  const model = loadModel(dir, opts);
  const adapter = LoraAdapter.create(model, makeLoraConfig({ loraDropout: 0.1 }), 0);
  adapter.attach(model);
  adapter.setTrainable(true);
  // B = 0 at init would make every A gradient 0: give B values so both paths are exercised.
  for (const [name, t] of adapter.namedParameters()) {
    if (name.includes('lora_B')) t.hostF32().fill(0.01);
  }
  const runs: [Run, Run] = [step(model, adapter, false), step(model, adapter, true)];
  adapter.dispose();
  model.dispose();
  return runs;
}

forEachCpuBackend((cpu) => {
  before(async () => {
    backend = await cpu.use();
  });

  for (const [label, opts] of [
    ['dense f32', {}],
    ['NF4', { quantization: { type: 'nf4', doubleQuant: true } }],
  ] as const) {
    test(`gradient checkpointing gives the same loss and LoRA gradients bit for bit (${label} base)`, () => {
      const [plain, checkpointed] = bothWays(randomModel(`same-${label}`, 64, 3), opts);
      assert.equal(checkpointed.loss, plain.loss);
      assert.ok(plain.grads.size > 0);
      for (const [name, grad] of plain.grads) {
        assert.deepEqual(checkpointed.grads.get(name), grad, name);
        assert.ok(
          grad.some((g) => g !== 0),
          `${name} has a gradient`,
        );
      }
    });
  }

  test('gradient checkpointing keeps less activation memory', () => {
    const [plain, checkpointed] = bothWays(randomModel('memory', 128, 6), {});
    console.log(
      `# activation peak, batch 4 x 64, 6 layers of 128: ${plain.activationPeak} B without, ${checkpointed.activationPeak} B with checkpointing`,
    );
    assert.ok(
      checkpointed.activationPeak < plain.activationPeak / 2,
      `${checkpointed.activationPeak} vs ${plain.activationPeak}`,
    );
  });
});
