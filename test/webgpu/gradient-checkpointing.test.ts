// gradient_checkpointing on WebGPU: LoRA gradients on an NF4 base (dropout 0.1) are the same bit
// for bit with and without it, as on the CPU (test/models/gradient-checkpointing.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { loadModel } from '../../src/models/load.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { Rng } from '../../src/util/rng.ts';
import { TINY } from '../helpers.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const setup = await useWebGpuBackend();

test(
  'webgpu: checkpointed LoRA gradients on an NF4 base equal the plain ones',
  { skip: setup.skip },
  async () => {
    const model = loadModel(TINY, { quantization: { type: 'nf4', doubleQuant: true } });
    const adapter = LoraAdapter.create(model, makeLoraConfig({ loraDropout: 0.1 }), 0);
    adapter.attach(model);
    adapter.setTrainable(true);
    for (const [name, t] of adapter.namedParameters()) {
      // B = 0 at init would leave every A gradient 0.
      if (name.includes('lora_B'))
        t.backend.upload(t.storage, t.byteOffset, new Float32Array(t.size).fill(0.01));
    }
    const [batch, seq] = [2, 16];
    const ids = Int32Array.from({ length: batch * seq }, (_, i) => 1 + ((i * 37) % 900));
    const runs: Map<string, Float32Array>[] = [];
    for (const checkpointing of [false, true]) {
      const rng = new Rng(5);
      model.dropoutSeeds = () => rng.nextU32();
      model.gradientCheckpointing = checkpointing;
      tidy(() => backward(model.loss({ batch, seq, inputIds: ids }, ids).loss));
      const grads = new Map<string, Float32Array>();
      for (const [name, t] of adapter.namedParameters()) {
        grads.set(name, await t.grad!.toFloat32());
        t.grad!.dispose();
        t.grad = null;
      }
      runs.push(grads);
    }
    for (const [name, grad] of runs[0]!) {
      assert.ok(
        grad.some((g) => g !== 0),
        `${name} has a gradient`,
      );
      assert.deepEqual(runs[1]!.get(name), grad, name);
    }
    adapter.dispose();
    model.dispose();
  },
);
