/**
 * Each architecture family end to end on a tiny random model: LoRA training (what `loraforge
 * train` runs), chat with the adapter, serving it over the OpenAI API, and merging it (the merged
 * model gives the adapted model's logits). Includes a multimodal `*ForConditionalGeneration`
 * folder read as its text model, with a vision tensor that loading ignores and merging keeps.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { noGrad } from '../../src/engine/tape.ts';
import { tidy } from '../../src/engine/tensor.ts';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { mergeToFolder } from '../../src/peft/merge.ts';
import { ModelServeEngine } from '../../src/serve/model-engine.ts';
import { createServer } from '../../src/serve/server.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { runTraining } from '../../src/train/run.ts';
import {
  TINY_CHAT_SHAPE,
  TINY_GEMMA3_TEXT,
  VISION_TENSOR,
  makeMultimodal,
  multimodalConfig,
  makeRandomChatModel,
  maxAbsDiff,
  useCpuBackend,
} from '../helpers.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

const SHAPE = TINY_CHAT_SHAPE;

const GEMMA3_MULTIMODAL = multimodalConfig(TINY_GEMMA3_TEXT);

const FAMILIES: Record<string, Record<string, unknown>> = {
  qwen3: { ...SHAPE, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 32 },
  gemma3: TINY_GEMMA3_TEXT,
  smollm3: { ...SHAPE, architectures: ['SmolLM3ForCausalLM'], no_rope_layers: [1, 0] },
  ministral: {
    ...SHAPE,
    architectures: ['MinistralForCausalLM'],
    sliding_window: 4,
    layer_types: ['sliding_attention', 'full_attention'],
  },
  // Phi-4-mini's kind: fused qkv_proj / gate_up_proj, RoPE on 3/4 of each head, LongRoPE whose
  // long factors apply past 8 positions, a sliding window on every layer.
  phi3: {
    ...SHAPE,
    architectures: ['Phi3ForCausalLM'],
    model_type: 'phi3',
    partial_rotary_factor: 0.75,
    sliding_window: 4,
    original_max_position_embeddings: 8,
    rope_scaling: {
      type: 'longrope',
      short_factor: [1, 1.2, 1.5, 2, 3, 4],
      long_factor: [2, 3, 5, 8, 13, 21],
    },
  },
  'gemma3 multimodal': GEMMA3_MULTIMODAL,
  // Saved before transformers 4.52 (most published Gemma 3 4B+ folders): language_model.model.*
  'gemma3 multimodal legacy': GEMMA3_MULTIMODAL,
};

function logits(model: DecoderModel): Float32Array {
  const inputIds = Int32Array.from([5, 17, 300, 41, 8, 99, 1000, 7, 12]);
  return noGrad(() =>
    tidy(() => {
      const h = model.forwardHidden({ batch: 1, seq: inputIds.length, inputIds });
      return model.logits(h).readSync() as Float32Array;
    }),
  );
}

const root = mkdtempSync(join(tmpdir(), 'lf-families-'));
before(() => useCpuBackend());
after(() => rmSync(root, { recursive: true, force: true }));

for (const [family, config] of Object.entries(FAMILIES)) {
  describe(family, () => {
    const folder = join(root, family.replaceAll(' ', '-'));
    const modelDir = join(folder, 'model');
    const adapterDir = join(folder, 'adapter');
    before(async () => {
      await makeRandomChatModel(modelDir, 0, config);
      if (config.text_config) makeMultimodal(modelDir, family.endsWith('legacy'));
      await runTraining(
        resolveTrainConfig([
          {
            source: 'test',
            values: {
              model: modelDir,
              dataset: join(import.meta.dirname, '..', '..', 'examples', 'identity.json'),
              set: { name: '小李', author: '小张' },
              output_dir: adapterDir,
              max_steps: 2,
              learning_rate: 1e-2,
              device: 'cpu',
            },
          },
        ]),
        { log: () => {}, progress: false },
      );
    });

    test('train writes a PEFT adapter with the module paths transformers uses', () => {
      const keys = SafetensorsFile.open(join(adapterDir, 'adapter_model.safetensors')).names();
      const prefix = config.text_config ? 'model.language_model' : 'model';
      assert.ok(keys.includes(`base_model.model.${prefix}.layers.1.mlp.down_proj.lora_B.weight`));
      assert.ok(keys.every((k) => k.startsWith(`base_model.model.${prefix}.layers.`)));
    });

    test('chat and serve answer with the adapter, the same text both ways', async () => {
      const pipeline = await ChatPipeline.load({ model: modelDir });
      const local = await ChatPipeline.load({ model: modelDir, adapter: adapterDir });
      const question = [{ role: 'user' as const, content: 'who are you?' }];
      const expected = (await local.chat(question, { maxNewTokens: 6 })).text;
      local.dispose();
      const engine = new ModelServeEngine(pipeline, 'base');
      await engine.loadAdapter('tuned', adapterDir);
      const server = createServer(engine, { maxBatch: 2 });
      const { port } = await server.listen(0, '127.0.0.1');
      try {
        const response = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'tuned',
            messages: question,
            max_tokens: 6,
            temperature: 0,
          }),
        });
        const body = (await response.json()) as { choices: { message: { content: string } }[] };
        assert.equal(response.status, 200);
        assert.equal(body.choices[0]!.message.content, expected);
      } finally {
        await server.close();
        pipeline.dispose();
      }
    });

    test('merge gives the adapted logits and keeps every other tensor', async () => {
      const model = loadModel(modelDir);
      const adapter = loadAdapter(adapterDir, model);
      const out = join(folder, 'merged');
      await mergeToFolder(modelDir, adapter, out);
      const base = logits(model);
      adapter.attach(model);
      const adapted = logits(model);
      const moved = maxAbsDiff(adapted, base);
      assert.ok(moved > 1e-3, `the adapter changes the logits (by ${moved})`);
      const merged = loadModel(out);
      const diff = maxAbsDiff(logits(merged), adapted);
      assert.ok(diff < 1e-4, `merged vs adapted logits: ${diff}`);
      const names = SafetensorsFile.open(join(out, 'model.safetensors')).names();
      assert.equal(names.includes(VISION_TENSOR), Boolean(config.text_config));
      // The merged folder keeps the base folder's spelling of every name.
      assert.deepEqual(
        names.sort(),
        SafetensorsFile.open(join(modelDir, 'model.safetensors')).names().sort(),
      );
      assert.deepEqual(
        JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).architectures,
        config.architectures,
      );
      merged.dispose();
      model.dispose();
    });
  });
}

test('phi3: one LoRA pair per fused matrix, under the names PEFT gives them', () => {
  const adapterDir = join(root, 'phi3', 'adapter');
  const keys = SafetensorsFile.open(join(adapterDir, 'adapter_model.safetensors')).names();
  const layer0 = keys.filter((k) => k.includes('.layers.0.')).sort();
  assert.deepEqual(
    layer0,
    ['mlp.down_proj', 'mlp.gate_up_proj', 'self_attn.o_proj', 'self_attn.qkv_proj']
      .flatMap((m) =>
        ['A', 'B'].map((ab) => `base_model.model.model.layers.0.${m}.lora_${ab}.weight`),
      )
      .sort(),
  );
  const config = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8'));
  // PEFT 0.18 saves the module paths 'all-linear' resolved to.
  assert.deepEqual(
    config.target_modules.filter((t: string) => t.includes('.layers.0.')),
    ['self_attn.qkv_proj', 'self_attn.o_proj', 'mlp.gate_up_proj', 'mlp.down_proj'].map(
      (m) => `model.layers.0.${m}`,
    ),
  );
  // A Llama recipe's targets would adapt nothing of the fused matrices: refused, naming Phi-3's.
  const model = loadModel(join(root, 'phi3', 'model'));
  assert.throws(
    () => LoraAdapter.create(model, makeLoraConfig({ targetModules: ['q_proj', 'v_proj'] })),
    (err: unknown) =>
      err instanceof LoraforgeError &&
      /target_modules \["q_proj","v_proj"\] matches no module/.test(err.message) &&
      /qkv_proj, o_proj, gate_up_proj, down_proj/.test(err.hint ?? ''),
  );
  model.dispose();
});
