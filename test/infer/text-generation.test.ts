/** generateText lets the event loop run between tokens when it can be stopped (chat's Ctrl-C). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Tokenizer } from '../../src/io/tokenizer.ts';
import type { SequenceDecoder } from '../../src/infer/sequences.ts';
import { generateText } from '../../src/infer/text-generation.ts';

test('a stop requested by an I/O callback ends generation at the next token', async () => {
  let steps = 0;
  // Steps resolve at once, as CPU decoding does: only microtasks, never the event loop.
  const decoder = {
    maxContext: 10_000,
    start: () => ({ id: 1 }),
    step: async () => [++steps % 50],
    release: () => {},
  } as unknown as SequenceDecoder;
  const tokenizer = {
    eosTokenId: undefined,
    decode: (ids: number[]) => ids.map(() => 'x').join(''),
  } as unknown as Tokenizer;
  let stop = false;
  setTimeout(() => (stop = true), 1);
  const result = await generateText(decoder, tokenizer, [1], {
    maxNewTokens: 5_000_000,
    shouldStop: () => stop,
  });
  assert.equal(result.finishReason, 'stop');
  assert.ok(steps < 5_000_000, `stopped after ${steps} steps`);
});
