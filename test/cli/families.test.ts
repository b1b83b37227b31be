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
import { encodeSafetensors } from '../../src/io/safetensors.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { writeFileAtomic } from '../../src/io/atomic.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadAdapter } from '../../src/peft/io.ts';
import { mergeToFolder } from '../../src/peft/merge.ts';
import { ModelServeEngine } from '../../src/serve/model-engine.ts';
import { createServer } from '../../src/serve/server.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { runTraining } from '../../src/train/run.ts';
import { TINY_CHAT_SHAPE, makeRandomChatModel, maxAbsDiff, useCpuBackend } from '../helpers.ts';

const SHAPE = TINY_CHAT_SHAPE;

const GEMMA3_TEXT = {
  ...SHAPE,
  architectures: ['Gemma3ForCausalLM'],
  model_type: 'gemma3_text',
  head_dim: 16,
  hidden_activation: 'gelu_pytorch_tanh',
  query_pre_attn_scalar: 16,
  sliding_window: 4,
  layer_types: ['sliding_attention', 'full_attention'],
};

const GEMMA3_MULTIMODAL = {
  architectures: ['Gemma3ForConditionalGeneration'],
  model_type: 'gemma3',
  eos_token_id: 2047,
  text_config: { ...GEMMA3_TEXT, architectures: undefined, eos_token_id: undefined },
  vision_config: { model_type: 'siglip_vision_model' },
};

const FAMILIES: Record<string, Record<string, unknown>> = {
  qwen3: { ...SHAPE, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', head_dim: 32 },
  gemma3: GEMMA3_TEXT,
  smollm3: { ...SHAPE, architectures: ['SmolLM3ForCausalLM'], no_rope_layers: [1, 0] },
  ministral: {
    ...SHAPE,
    architectures: ['MinistralForCausalLM'],
    sliding_window: 4,
    layer_types: ['sliding_attention', 'full_attention'],
  },
  'gemma3 multimodal': GEMMA3_MULTIMODAL,
  // Saved before transformers 4.52 (most published Gemma 3 4B+ folders): language_model.model.*
  'gemma3 multimodal legacy': GEMMA3_MULTIMODAL,
};

const VISION_TENSOR = 'model.vision_tower.vision_model.post_layernorm.weight';

/**
 * Adds a vision-tower tensor to a model folder's weights (a multimodal checkpoint has many), and
 * with `legacy` spells the language model's names as checkpoints before transformers 4.52 did.
 */
function makeMultimodal(dir: string, legacy: boolean): void {
  const file = SafetensorsFile.open(join(dir, 'model.safetensors'));
  const tensors = file.names().map((name) => ({
    name: legacy ? name.replace(/^model\.language_model\./, 'language_model.model.') : name,
    dtype: file.info(name).dtype,
    shape: file.info(name).shape,
    data: file.read(name),
  }));
  file.close();
  tensors.push({ name: VISION_TENSOR, dtype: 'F32', shape: [3], data: new Uint8Array(12) });
  writeFileAtomic(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
}

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
