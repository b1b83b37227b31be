/**
 * The page's recipe on the library's Trainer and generator (src/web), run here on the CPU backend:
 * they only read results asynchronously, so they behave the same on WebGPU (test/web/page.test.ts
 * runs them in Chromium), and a recipe change that stops teaching the name fails here in seconds.
 * The adapter files the page offers as downloads load as an adapter folder.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { adapterFiles, adapterTensors } from '../../src/peft/adapter-files.ts';
import { conversationsFromText, nameFirst } from '../../src/web/dataset-text.ts';
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

/** What the page's Ask button does: a greedy reply through the template, from the library. */
async function ask(question: string): Promise<string> {
  const messages = [{ role: 'user' as const, content: question }];
  return (await pipeline.chat(messages, { temperature: 0, maxNewTokens: 48 })).text;
}

test("the page's recipe teaches the tiny model its new name and detaches cleanly", async () => {
  const identity = { name: '小李', author: '小张' };
  const text = readFileSync(join(ROOT, 'examples', 'identity.json'), 'utf8');
  const records = conversationsFromText(text, 'identity.json', identity);
  const conversations = nameFirst(records, identity);
  assert.equal(records.length, 90);
  assert.equal(conversations.length, 72);
  const { model, tokenizer, template } = pipeline;
  assert.doesNotMatch(await ask('你是谁？'), /小李/);

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
  const answer = await ask('你是谁？');
  assert.match(answer, /^我是 小李/, answer);
  assert.ok(adapter.namedParameters().every(([, t]) => !t.requiresGrad && t.grad === null));

  // The page's downloads, put in one folder, are an adapter folder the library (and chat) loads.
  const folder = mkdtempSync(join(tmpdir(), 'lf-page-adapter-'));
  const files = adapterFiles(adapter, await adapterTensors(adapter), {
    template: template.toJSON(),
  });
  for (const { name, contents } of files)
    writeFileSync(
      join(folder, name),
      Buffer.concat(typeof contents === 'string' ? [Buffer.from(contents)] : contents),
    );
  LoraAdapter.detach(model);
  adapter.dispose();
  assert.match(await ask('你是谁？'), /皮克/);
  const reloaded = await ChatPipeline.load({
    model: join(ROOT, 'assets', 'tiny-chat'),
    adapter: folder,
  });
  try {
    const messages = [{ role: 'user' as const, content: '你是谁？' }];
    assert.equal((await reloaded.chat(messages, { maxNewTokens: 48 })).text, answer);
  } finally {
    reloaded.dispose();
    rmSync(folder, { recursive: true, force: true });
  }
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
