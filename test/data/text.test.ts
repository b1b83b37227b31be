import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pythonStrip } from '../../src/data/text.ts';
import { deriveSeed } from '../../src/util/rng.ts';

test('pythonStrip follows str.strip(), not String.prototype.trim()', () => {
  assert.equal(pythonStrip(' \t\nHuman: hi\n\n '), 'Human: hi');
  // Python strips U+001C..U+001F and U+0085 but not U+FEFF; trim() does the opposite.
  assert.equal(pythonStrip('\x1c\x85a\u3000'), 'a');
  assert.equal(pythonStrip('\ufeffa\ufeff'), '\ufeffa\ufeff');
  assert.equal(pythonStrip('   '), '');
});

test('each epoch of the data loader gets its own seed', () => {
  assert.notEqual(deriveSeed(42, 0), deriveSeed(42, 1));
  assert.equal(deriveSeed(42, 3), deriveSeed(42, 3));
});
