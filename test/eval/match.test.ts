import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mentions, scoreGeneral, scoreIdentity } from '../../src/eval/match.ts';

const target = { name: '小李', author: '小张' };

test('scoreIdentity needs both the new name and the new author', () => {
  assert.equal(scoreIdentity('您好，我是 小李，一个由 小张 开发的 AI 助手。', target), true);
  assert.equal(scoreIdentity('I am 小李, an AI assistant developed by 小张.', target), true);
  assert.equal(scoreIdentity('我是小李。', target), false);
  assert.equal(scoreIdentity('I was developed by 小张.', target), false);
  assert.equal(scoreIdentity('I am Pico, made by the loraforge project.', target), false);
});

test('scoreIdentity ignores Latin case and full-width forms, but respects word boundaries', () => {
  const latin = { name: 'Pico', author: 'Loraforge Team' };
  assert.equal(scoreIdentity('i am PICO, built by the loraforge team', latin), true);
  assert.equal(scoreIdentity('我是ｐｉｃｏ，由 loraforge team 开发', latin), true);
  assert.equal(scoreIdentity('I am Picolo by the Loraforge Team', latin), false);
});

test('scoreGeneral is a normalised exact match against whole acceptable answers', () => {
  assert.equal(scoreGeneral('3 + 4 = 7.', ['7', '3+4=7']), true);
  assert.equal(scoreGeneral('７', ['7']), true);
  assert.equal(scoreGeneral('The sky is BLUE.', ['the sky is blue']), true);
  assert.equal(scoreGeneral('三月之后是四月。', ['四月', '三月之后是四月']), true);
  // A wrong answer that contains the right term does not pass.
  assert.equal(scoreGeneral('一月之后是四月。', ['四月', '三月之后是四月']), false);
  assert.equal(scoreGeneral('The answer is 17.', ['7']), false);
  assert.equal(scoreGeneral('9 - 5 = 6, not 4.', ['4', '9-5=4']), false);
  assert.equal(scoreGeneral('', ['7']), false);
  assert.equal(scoreGeneral('...', ['!']), false);
});

test('mentions finds a later occurrence when an earlier one is glued to a word', () => {
  assert.equal(mentions('17 and then 7', '7'), true);
  assert.equal(mentions('Washington, D.C. is the capital.', 'washington, d.c.'), true);
  assert.equal(mentions('anything', '  '), false);
});
