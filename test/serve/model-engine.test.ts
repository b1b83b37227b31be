/**
 * The real model behind the OpenAI server: an adapter trained with `loraforge train` answers the
 * same through the server as through the generate pipeline (greedy), with the adapter chosen by
 * the request's `model` field, next to the base model in the same batch.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { ModelServeEngine } from '../../src/serve/model-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';
import { resolveTrainConfig } from '../../src/train/config.ts';
import { runTraining } from '../../src/train/run.ts';
import { makeRandomChatModel, useCpuBackend } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'lf-serve-model-'));
const modelDir = join(root, 'model');
const adapterDir = join(root, 'adapter');
let server: LoraforgeServer;
let client: OpenAI;
let base: ChatPipeline;

before(async () => {
  await useCpuBackend();
  await makeRandomChatModel(modelDir);
  await runTraining(
    resolveTrainConfig([
      {
        source: 'test',
        values: {
          model: modelDir,
          dataset: join(import.meta.dirname, '..', '..', 'examples', 'identity.json'),
          set: { name: '小李', author: '小张' },
          output_dir: adapterDir,
          max_steps: 4,
          learning_rate: 1e-2,
          lora_dropout: 0,
          device: 'cpu',
        },
      },
    ]),
    { log: () => {}, progress: false },
  );
  base = await ChatPipeline.load({ model: modelDir });
  const engine = new ModelServeEngine(base, 'tiny');
  await engine.loadAdapter('identity', adapterDir);
  server = createServer(engine, { maxBatch: 4 });
  const { port } = await server.listen(0, '127.0.0.1');
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused' });
});

after(async () => {
  await server?.close();
  base?.dispose();
  rmSync(root, { recursive: true, force: true });
});

test('an adapter answers the same through the server as through the generate pipeline', async () => {
  const question = 'who are you?';
  const local = await ChatPipeline.load({ model: modelDir, adapter: adapterDir });
  const expected = (await local.chat([{ role: 'user', content: question }], { maxNewTokens: 12 }))
    .text;
  const expectedBase = (
    await base.chat([{ role: 'user', content: question }], { maxNewTokens: 12 })
  ).text;
  local.dispose();
  assert.notEqual(expected, expectedBase, 'the adapter changes the answer');
  // Both requests at once: the server batches base and adapter rows in the same steps.
  const [viaAdapter, viaBase] = await Promise.all(
    ['identity', 'tiny'].map((model) =>
      client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: question }],
        max_tokens: 12,
        temperature: 0,
      }),
    ),
  );
  assert.equal(viaAdapter!.choices[0]!.message.content, expected);
  assert.equal(viaBase!.choices[0]!.message.content, expectedBase);
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id).sort(), ['identity', 'tiny']);
});
