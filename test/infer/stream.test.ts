/** streamGeneration: the callback generation API as an async iterator. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { streamGeneration } from '../../src/infer/stream.ts';
import type { GenerationResult } from '../../src/infer/text-generation.ts';

/** A fake generation that emits `deltas` one per macrotask, checking shouldStop before each. */
function fakeGeneration(deltas: string[]) {
  const calls = { emitted: 0 };
  const generate = async (hooks: {
    onText: (delta: string) => void;
    shouldStop: () => boolean;
  }): Promise<GenerationResult> => {
    let finishReason: GenerationResult['finishReason'] = 'length';
    for (const delta of deltas) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (hooks.shouldStop()) {
        finishReason = 'stop';
        break;
      }
      hooks.onText(delta);
      calls.emitted++;
    }
    const text = deltas.slice(0, calls.emitted).join('');
    return { text, tokenIds: [], promptTokens: 0, finishReason };
  };
  return { generate, calls };
}

test('yields every delta in order and returns the result', async () => {
  const { generate } = fakeGeneration(['Hel', 'lo', ' world']);
  const stream = streamGeneration(generate);
  const seen: string[] = [];
  let next = await stream.next();
  while (!next.done) {
    seen.push(next.value);
    next = await stream.next();
  }
  assert.deepEqual(seen, ['Hel', 'lo', ' world']);
  assert.equal(next.value?.text, 'Hello world');
});

test('breaking out of the loop stops the generation at its next token', async () => {
  const { generate, calls } = fakeGeneration(['a', 'b', 'c', 'd', 'e']);
  const seen: string[] = [];
  for await (const delta of streamGeneration(generate)) {
    seen.push(delta);
    if (seen.length === 2) break;
  }
  assert.deepEqual(seen, ['a', 'b']);
  assert.ok(calls.emitted <= 3, `generation went on for ${calls.emitted} tokens`);
});

test('an error in the generation reaches the consumer', async () => {
  const stream = streamGeneration(async (hooks) => {
    hooks.onText('x');
    throw new Error('decoder failed');
  });
  await assert.rejects(async () => {
    for await (const _ of stream);
  }, /decoder failed/);
});
