/** Long prompts are tokenized off the event loop, to exactly the ids the main thread computes. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { ModelServeEngine } from '../../src/serve/model-engine.ts';
import { makeRandomChatModel, useCpuBackend } from '../helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'lf-tok-thread-'));
let pipeline: ChatPipeline;
let engine: ModelServeEngine;

before(async () => {
  await useCpuBackend();
  pipeline = await ChatPipeline.load({ model: await makeRandomChatModel(join(root, 'model')) });
  engine = new ModelServeEngine(pipeline, 'tiny', { maxContext: 8192 });
});

after(() => {
  pipeline.dispose();
  rmSync(root, { recursive: true, force: true });
});

const long = '你好，世界。 Hello, world! 123\n'.repeat(3000);

test('a long prompt gets the same ids on the worker thread as on the main thread', async () => {
  const text = engine.encodeText(long);
  assert.ok(text instanceof Promise, 'a long prompt goes to the worker');
  assert.deepEqual(await text, pipeline.tokenizer.encode(long));
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: long },
  ];
  assert.deepEqual(
    await engine.encodeChat(messages, null),
    pipeline.template.encodePrompt(messages),
  );
  assert.ok(Array.isArray(engine.encodeText('short')), 'a short prompt stays on the main thread');
});

test('the event loop keeps turning while a long prompt is tokenized', async () => {
  const huge = long.repeat(4);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const started = performance.now();
  await engine.encodeText(huge);
  const ms = performance.now() - started;
  clearInterval(timer);
  // Synchronous tokenization would leave no turn for the timer until it is done.
  assert.ok(ticks >= 3, `${ticks} timer ticks in ${ms.toFixed(0)} ms`);
});
