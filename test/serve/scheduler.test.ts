import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeEngine } from './fake-engine.ts';
import { Scheduler, type GenerationJob } from '../../src/serve/scheduler.ts';

const sampling = { temperature: 0, topP: 1, seed: undefined };

function job(
  engine: FakeEngine,
  { maxNewTokens = 100, onToken = (_id: number): boolean => true } = {},
): GenerationJob & { tokens: number[] } {
  const tokens: number[] = [];
  return {
    sequence: { promptIds: engine.encodeText('hi'), adapter: null, sampling, maxNewTokens },
    onToken: (id) => {
      tokens.push(id);
      return onToken(id);
    },
    tokens,
  };
}

test('a job runs to EOS and its sequence is released', async () => {
  const engine = new FakeEngine({ reply: () => 'abc' });
  const scheduler = new Scheduler(engine, { maxBatch: 4, maxQueue: 4 });
  const j = job(engine);
  assert.deepEqual(await scheduler.submit(j), { finishReason: 'stop', completionTokens: 4 });
  assert.equal(String.fromCodePoint(...j.tokens), 'abc');
  assert.equal(engine.live.size, 0);
});

test('maxNewTokens ends a job with length', async () => {
  const engine = new FakeEngine({ reply: () => 'abcdef' });
  const scheduler = new Scheduler(engine, { maxBatch: 1, maxQueue: 1 });
  assert.deepEqual(await scheduler.submit(job(engine, { maxNewTokens: 2 })), {
    finishReason: 'length',
    completionTokens: 2,
  });
  assert.equal(engine.live.size, 0);
});

test('onToken returning false ends the job with stop', async () => {
  const engine = new FakeEngine({ reply: () => 'abcdef' });
  const scheduler = new Scheduler(engine, { maxBatch: 1, maxQueue: 1 });
  const outcome = await scheduler.submit(
    job(engine, { onToken: (id) => id !== 'c'.codePointAt(0) }),
  );
  assert.deepEqual(outcome, { finishReason: 'stop', completionTokens: 3 });
});

test('steps that only prefill a prompt chunk deliver no token, and others keep streaming', async () => {
  const engine = new FakeEngine({ reply: () => 'abc', prefillChunk: 1 });
  const scheduler = new Scheduler(engine, { maxBatch: 2, maxQueue: 2 });
  const short = job(engine); // 'hi': 2 prompt tokens, 1 prefill-only step
  const long: GenerationJob & { tokens: number[] } = {
    ...job(engine),
    sequence: { ...job(engine).sequence, promptIds: engine.encodeText('a long prompt') },
  };
  const order: string[] = [];
  const record = (name: string, j: GenerationJob) => {
    const onToken = j.onToken;
    j.onToken = (id) => (order.push(name), onToken(id));
  };
  record('short', short);
  record('long', long);
  const outcomes = await Promise.all([scheduler.submit(short), scheduler.submit(long)]);
  assert.deepEqual(outcomes, [
    { finishReason: 'stop', completionTokens: 4 },
    { finishReason: 'stop', completionTokens: 4 },
  ]);
  assert.equal(String.fromCodePoint(...long.tokens), 'abc');
  // The short request streamed its whole reply while the long prompt was still prefilling.
  assert.deepEqual(order.slice(0, 3), ['short', 'short', 'short']);
});

test('jobs submitted together are decoded in one batch, capped at maxBatch', async () => {
  const engine = new FakeEngine({ reply: () => 'abcd', stepDelayMs: 1 });
  const scheduler = new Scheduler(engine, { maxBatch: 3, maxQueue: 10 });
  await Promise.all(Array.from({ length: 5 }, () => scheduler.submit(job(engine))));
  assert.equal(engine.maxBatchSeen(), 3);
  assert.equal(engine.live.size, 0);
  assert.equal(engine.releasedCount, 5);
});

test('a job arriving mid-generation joins the running batch between steps', async () => {
  const engine = new FakeEngine({ reply: () => 'x'.repeat(20), stepDelayMs: 2 });
  const scheduler = new Scheduler(engine, { maxBatch: 4, maxQueue: 4 });
  const first = scheduler.submit(job(engine));
  await new Promise((resolve) => setTimeout(resolve, 10));
  await Promise.all([first, scheduler.submit(job(engine))]);
  assert.equal(engine.maxBatchSeen(), 2);
});

test('more jobs than maxBatch + maxQueue are refused with 429', async () => {
  const engine = new FakeEngine({ stepDelayMs: 1 });
  const scheduler = new Scheduler(engine, { maxBatch: 1, maxQueue: 1 });
  const accepted = [scheduler.submit(job(engine)), scheduler.submit(job(engine))];
  await assert.rejects(scheduler.submit(job(engine)), { status: 429 });
  await Promise.all(accepted);
});

test('aborting a queued or running job releases its sequence and rejects with the reason', async () => {
  const engine = new FakeEngine({ reply: () => 'y'.repeat(1000), stepDelayMs: 2 });
  const scheduler = new Scheduler(engine, { maxBatch: 1, maxQueue: 1 });
  const running = new AbortController();
  const queued = new AbortController();
  const a = scheduler.submit(job(engine), running.signal);
  const b = scheduler.submit(job(engine), queued.signal);
  await new Promise((resolve) => setTimeout(resolve, 10));
  queued.abort(new Error('gone-b'));
  await assert.rejects(b, /gone-b/);
  running.abort(new Error('gone-a'));
  await assert.rejects(a, /gone-a/);
  assert.equal(engine.live.size, 0);
  await scheduler.whenIdle();
});

test('a failing step fails the jobs in it and the loop keeps serving', async () => {
  const engine = new FakeEngine({ reply: () => 'ok' });
  const scheduler = new Scheduler(engine, { maxBatch: 2, maxQueue: 2 });
  const realStep = engine.step.bind(engine);
  engine.step = async () => {
    engine.step = realStep;
    throw new Error('device lost');
  };
  await assert.rejects(scheduler.submit(job(engine)), /device lost/);
  assert.equal((await scheduler.submit(job(engine))).finishReason, 'stop');
  assert.equal(engine.live.size, 0);
});

test('after stopAccepting new jobs get 503 and cancelAll fails running ones', async () => {
  const engine = new FakeEngine({ reply: () => 'z'.repeat(1000), stepDelayMs: 1 });
  const scheduler = new Scheduler(engine, { maxBatch: 2, maxQueue: 2 });
  const running = scheduler.submit(job(engine));
  scheduler.stopAccepting();
  await assert.rejects(scheduler.submit(job(engine)), { status: 503 });
  scheduler.cancelAll(new Error('shutdown'));
  await assert.rejects(running, /shutdown/);
  await scheduler.whenIdle();
  assert.equal(engine.live.size, 0);
});

test('with a KV budget, jobs wait in order until running sequences free memory', async () => {
  // Each job reserves 2 prompt + 10 new tokens; 30 fit two at a time.
  const engine = new FakeEngine({ reply: () => 'abc', stepDelayMs: 1, kvBudgetTokens: 30 });
  const scheduler = new Scheduler(engine, { maxBatch: 8, maxQueue: 8 });
  const jobs = Array.from({ length: 5 }, () => scheduler.submit(job(engine, { maxNewTokens: 10 })));
  for (const outcome of await Promise.all(jobs)) assert.equal(outcome.finishReason, 'stop');
  assert.equal(engine.maxBatchSeen(), 2);
});

test('a job that cannot fit even on an idle engine fails with 503', async () => {
  const engine = new FakeEngine({ kvBudgetTokens: 10 });
  const scheduler = new Scheduler(engine, { maxBatch: 8, maxQueue: 8 });
  await assert.rejects(scheduler.submit(job(engine, { maxNewTokens: 50 })), { status: 503 });
  assert.equal((await scheduler.submit(job(engine, { maxNewTokens: 5 }))).completionTokens, 5);
});
