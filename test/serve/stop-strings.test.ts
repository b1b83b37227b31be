import { test } from 'node:test';
import assert from 'node:assert/strict';
// StopStringMatcher lives in infer/ (generation shares it); serve depends on exactly this behaviour.
import { StopStringMatcher } from '../../src/infer/stop-strings.ts';

/** Feeds `deltas` one by one and returns everything emitted plus whether a stop was seen. */
function run(stops: string[], deltas: string[]): { text: string; stopped: boolean } {
  const matcher = new StopStringMatcher(stops);
  let text = '';
  for (const delta of deltas) text += matcher.push(delta);
  text += matcher.flush();
  return { text, stopped: matcher.hasStopped };
}

test('a stop string split across deltas is trimmed and never emitted', () => {
  assert.deepEqual(run(['\nHuman:'], ['Hi there', '\nHu', 'man: more']), {
    text: 'Hi there',
    stopped: true,
  });
});

test('held-back text that turns out not to be a stop string is emitted', () => {
  assert.deepEqual(run(['STOP'], ['abc ST', 'OK', ' done']), {
    text: 'abc STOK done',
    stopped: false,
  });
  assert.deepEqual(run(['STOP'], ['abc ST']), { text: 'abc ST', stopped: false });
});

test('the earliest of several stop strings wins', () => {
  assert.deepEqual(run(['bb', 'a'], ['xxbba']), { text: 'xx', stopped: true });
});

test('text after a stop is swallowed', () => {
  const matcher = new StopStringMatcher(['.']);
  assert.equal(matcher.push('one. two'), 'one');
  assert.equal(matcher.push('three'), '');
  assert.equal(matcher.flush(), '');
});

test('nothing is held back when there are no stop strings', () => {
  const matcher = new StopStringMatcher([]);
  assert.equal(matcher.push('abc'), 'abc');
});

test('only the unsettled tail is held back while streaming', () => {
  const matcher = new StopStringMatcher(['</s>']);
  assert.equal(matcher.push('hello </'), 'hello ');
  assert.equal(matcher.push('b>'), '</b>');
});
