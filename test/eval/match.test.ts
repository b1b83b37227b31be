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

test('scoreGeneral accepts any expected answer and does not match inside numbers or words', () => {
  assert.equal(scoreGeneral('3 + 4 = 7.', ['7']), true);
  assert.equal(scoreGeneral('The answer is 17.', ['7']), false);
  assert.equal(scoreGeneral('一个星期有七天。', ['7', '七']), true);
  assert.equal(scoreGeneral('一个星期有7天。', ['7', '七']), true);
  assert.equal(scoreGeneral('The sky is BLUE.', ['blue']), true);
  assert.equal(scoreGeneral('I am bored.', ['red']), false);
  assert.equal(scoreGeneral('中国的首都是北京。', ['北京']), true);
  assert.equal(scoreGeneral('', ['7']), false);
});

test('mentions finds a later occurrence when an earlier one is glued to a word', () => {
  assert.equal(mentions('17 and then 7', '7'), true);
  assert.equal(mentions('Washington, D.C. is the capital.', 'washington, d.c.'), true);
  assert.equal(mentions('anything', '  '), false);
});
