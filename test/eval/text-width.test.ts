import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayWidth, fitToWidth } from '../../src/eval/text-width.ts';

test('displayWidth counts CJK and full-width punctuation as two columns', () => {
  assert.equal(displayWidth('abc'), 3);
  assert.equal(displayWidth('小李'), 4);
  assert.equal(displayWidth('你好，世界！'), 12);
  assert.equal(displayWidth('I am 小李.'), 10);
  assert.equal(displayWidth('안녕'), 4);
  assert.equal(displayWidth('e\u0301'), 1); // combining accent
  assert.equal(displayWidth('😀'), 2);
});

test('fitToWidth pads and truncates by display width', () => {
  assert.equal(fitToWidth('ab', 4), 'ab  ');
  assert.equal(fitToWidth('小李', 6), '小李  ');
  assert.equal(fitToWidth('abcdef', 4), 'abc…');
  // 小 (2) + 李 (2) would pass the 4 - 1 columns left before "…": pad instead of splitting.
  assert.equal(fitToWidth('小李小张', 4), '小… ');
  for (const text of ['小李小张abc', 'abc小李', '，。？']) {
    for (let width = 1; width <= 10; width++)
      assert.equal(displayWidth(fitToWidth(text, width)), width);
  }
});
