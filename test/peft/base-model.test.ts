import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baseModelMismatch, modelName } from '../../src/peft/base-model.ts';

test('a Hub id, a local folder and a cache snapshot of one model have one name', () => {
  const names = [
    'Qwen/Qwen2-0.5B-Instruct',
    '/models/Qwen2-0.5B-Instruct/',
    '/root/.cache/huggingface/hub/models--Qwen--Qwen2-0.5B-Instruct/snapshots/c540970f',
  ].map(modelName);
  assert.deepEqual(names, Array(3).fill('qwen2-0.5b-instruct'));
});

test('an adapter trained on another base model is named in the warning', () => {
  assert.equal(
    baseModelMismatch('runs/a', 'Qwen/Qwen2-0.5B-Instruct', ['/m/Qwen2-0.5B-Instruct']),
    null,
  );
  assert.equal(baseModelMismatch('runs/a', undefined, ['anything']), null);
  const warning = baseModelMismatch('runs/a', 'Qwen/Qwen2-0.5B-Instruct', ['Qwen/Qwen2-0.5B']);
  assert.match(
    warning!,
    /runs\/a was trained on Qwen\/Qwen2-0\.5B-Instruct .* applied to Qwen\/Qwen2-0\.5B/,
  );
});
