/**
 * The page's async greedy decoding, LoRA loop and recipe (src/web), run here on the CPU backend:
 * they only read results asynchronously, so they behave the same on WebGPU (test/web/page.test.ts
 * runs them in Chromium), and a recipe change that stops teaching the name fails here in seconds.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { conversationsFromText, nameFirst } from '../../src/web/dataset-text.ts';
import { greedyReply } from '../../src/web/greedy.ts';
import { DEFAULT_FINETUNE, fineTuneLora } from '../../src/web/lora-finetune.ts';
import { describeRecipe, pageOptions } from '../../src/web/page-options.ts';
import { useCpuBackend } from '../helpers.ts';

const ROOT = join(import.meta.dirname, '..', '..');
let pipeline: ChatPipeline;

before(async () => {
  await useCpuBackend();
  pipeline = await ChatPipeline.load({
    model: join(ROOT, 'assets', 'tiny-chat'),
    template: 'tutorial',
  });
});

test('async greedy replies match the CLI decoder', async () => {
  for (const question of ['你是谁？', 'What is 2 + 3?']) {
    const { model, tokenizer, template } = pipeline;
    const reply = await greedyReply(model, tokenizer, template, question, { maxNewTokens: 48 });
    const expected = await pipeline.chat([{ role: 'user', content: question }], {
      temperature: 0,
      maxNewTokens: 48,
    });
    assert.equal(reply, expected.text);
  }
});

test("the page's recipe teaches the tiny model its new name and detaches cleanly", async () => {
  const identity = { name: '小李', author: '小张' };
  const text = readFileSync(join(ROOT, 'examples', 'identity.json'), 'utf8');
  const records = conversationsFromText(text, 'identity.json', identity);
  const conversations = nameFirst(records, identity);
  assert.equal(records.length, 90);
  assert.equal(conversations.length, 72);
  const { model, tokenizer, template } = pipeline;
  const ask = () => greedyReply(model, tokenizer, template, '你是谁？', { maxNewTokens: 48 });
  assert.doesNotMatch(await ask(), /小李/);

  const reported: number[] = [];
  const { adapter, losses, firstBatchLossAfter } = await fineTuneLora(
    model,
    tokenizer,
    template,
    conversations,
    { ...DEFAULT_FINETUNE, onStep: (_, loss) => reported.push(loss) },
  );
  assert.deepEqual(reported, losses);
  assert.equal(losses.length, DEFAULT_FINETUNE.steps);
  // The same batch before and after training (single steps see different batches: noisy).
  assert.ok(firstBatchLossAfter < 0.7 * losses[0]!, `${losses[0]} → ${firstBatchLossAfter}`);
  // 我是 小李，由 小张 开发。
  const answer = await ask();
  assert.match(answer, /^我是 小李/, answer);
  assert.ok(adapter.namedParameters().every(([, t]) => !t.requiresGrad && t.grad === null));
  LoraAdapter.detach(model);
  adapter.dispose();
  assert.match(await ask(), /皮克/);
});

test('the page reads its recipe from the URL query', () => {
  const defaults = pageOptions('');
  assert.deepEqual(defaults, {
    fineTune: DEFAULT_FINETUNE,
    data: 'name-first',
    featureLevel: 'core',
  });
  assert.equal(
    describeRecipe(defaults),
    '40 steps of 4 examples (32 tokens at most) from the name-first identity records, ' +
      'LoRA r 8, lr 0.005 constant, seed 42',
  );
  const custom = pageOptions(
    '?steps=6&batch=8&lr=2e-3&rank=16&cutoff=256&schedule=cosine&seed=0&data=all&featureLevel=compatibility',
  );
  assert.deepEqual(custom, {
    fineTune: {
      steps: 6,
      batchSize: 8,
      learningRate: 2e-3,
      rank: 16,
      cutoffLen: 256,
      schedule: 'cosine',
      seed: 0,
    },
    data: 'all',
    featureLevel: 'compatibility',
  });
  assert.throws(() => pageOptions('?steps=1.5'), /\?steps=1\.5: expected a positive whole number/);
  assert.throws(() => pageOptions('?lr=-1'), /\?lr=-1: expected a positive number/);
  assert.throws(() => pageOptions('?steps='), /\?steps=: expected/);
  assert.throws(() => pageOptions('?schedule=step'), /expected one of linear, cosine/);
  assert.throws(() => pageOptions('?data=some'), /expected one of name-first, all/);
});
