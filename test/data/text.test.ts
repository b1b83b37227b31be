import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pythonStrip } from '../../src/data/text.ts';
import { Mulberry32, deriveSeed, shuffled } from '../../src/data/prng.ts';

test('pythonStrip follows str.strip(), not String.prototype.trim()', () => {
  assert.equal(pythonStrip(' \t\nHuman: hi\n\n '), 'Human: hi');
  // Python strips U+001C..U+001F and U+0085 but not U+FEFF; trim() does the opposite.
  assert.equal(pythonStrip('\x1c\x85a\u3000'), 'a');
  assert.equal(pythonStrip('\ufeffa\ufeff'), '\ufeffa\ufeff');
  assert.equal(pythonStrip('   '), '');
});

test('Mulberry32 is deterministic and resumable from its state', () => {
  const a = new Mulberry32(42);
  const first = [a.next(), a.next()];
  const b = new Mulberry32(42);
  assert.deepEqual([b.next(), b.next()], first);
  const resumed = new Mulberry32(a.state);
  assert.equal(resumed.next(), a.next());
  for (let i = 0; i < 1000; i++) {
    const x = a.next();
    assert.ok(x >= 0 && x < 1);
  }
});

test('shuffled permutes a copy; epochs get different seeds', () => {
  const items = Array.from({ length: 20 }, (_, i) => i);
  const out = shuffled(items, new Mulberry32(1));
  assert.deepEqual(
    [...out].sort((x, y) => x - y),
    items,
  );
  assert.notDeepEqual(out, items);
  assert.notEqual(deriveSeed(42, 0), deriveSeed(42, 1));
});
