/**
 * The page's async greedy decoding and LoRA loop (src/web), run here on the CPU backend: they only
 * read results asynchronously, so they behave the same on WebGPU (test/web/page.e2e.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { conversationsFromText } from '../../src/web/dataset-text.ts';
import { greedyReply } from '../../src/web/greedy.ts';
import { DEFAULT_FINETUNE, fineTuneLora } from '../../src/web/lora-finetune.ts';
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

test('the LoRA loop lowers the identity loss and detaches cleanly', async () => {
  const text = readFileSync(join(ROOT, 'examples', 'identity.json'), 'utf8');
  const conversations = conversationsFromText(text, 'identity.json', {
    name: '小李',
    author: '小张',
  });
  const reported: number[] = [];
  const { model, tokenizer, template } = pipeline;
  const { adapter, losses, firstBatchLossAfter } = await fineTuneLora(
    model,
    tokenizer,
    template,
    conversations,
    { ...DEFAULT_FINETUNE, steps: 6, batchSize: 4, onStep: (_, loss) => reported.push(loss) },
  );
  assert.deepEqual(reported, losses);
  assert.equal(losses.length, 6);
  // The same batch before and after six steps (seeded, so 6.79 → 5.79 every time).
  assert.ok(firstBatchLossAfter < 0.9 * losses[0]!, `${losses[0]} → ${firstBatchLossAfter}`);
  assert.ok(adapter.namedParameters().every(([, t]) => !t.requiresGrad && t.grad === null));
  LoraAdapter.detach(model);
  adapter.dispose();
});
