// Runtime adapter loading: confined to the adapters folder, visible in /v1/models, usable as `model`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeEngine } from './fake-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';

const scratch = realpathSync(mkdtempSync(join(tmpdir(), 'loraforge-serve-')));
const adaptersDir = join(scratch, 'adapters');
const outside = join(scratch, 'outside');
const engine = new FakeEngine({ reply: () => 'x'.repeat(10_000), stepDelayMs: 1 });
let server: LoraforgeServer;
let base: string;

before(async () => {
  mkdirSync(join(adaptersDir, 'legal'), { recursive: true });
  mkdirSync(join(adaptersDir, 'nested', 'medical'), { recursive: true });
  mkdirSync(outside);
  symlinkSync(outside, join(adaptersDir, 'escape'));
  symlinkSync(join(adaptersDir, 'legal'), join(adaptersDir, 'alias-inside'));
  server = createServer(engine, { adaptersDir });
  const { port } = await server.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function post(path: string, body: unknown) {
  const res = await fetch(base + path, { method: 'POST', body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, text };
}

async function waitUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++)
    await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(condition(), 'timed out');
}

const load = (lora_name: string, lora_path: string) =>
  post('/v1/load_lora_adapter', { lora_name, lora_path });

async function modelIds(): Promise<string[]> {
  const res = await fetch(`${base}/v1/models`);
  return ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id);
}

test('an adapter folder inside the adapters folder loads, by relative or absolute path', async () => {
  assert.equal((await load('legal', 'legal')).status, 200);
  assert.equal(engine.adapterDir('legal'), join(adaptersDir, 'legal'));
  assert.equal((await load('medical', join(adaptersDir, 'nested/medical'))).status, 200);
  assert.equal((await load('via-link', 'alias-inside')).status, 200);
  assert.equal(engine.adapterDir('via-link'), join(adaptersDir, 'legal'));
  assert.deepEqual(await modelIds(), ['fake-base', 'legal', 'medical', 'via-link']);
  const res = await post('/v1/completions', { model: 'medical', prompt: 'p', max_tokens: 3 });
  assert.equal(res.status, 200);
});

test('paths escaping the adapters folder are 400 and load nothing', async () => {
  for (const path of [
    '../outside',
    'legal/../../outside',
    'legal/..',
    outside,
    '/etc',
    'escape',
    'missing',
    '',
  ]) {
    const res = await load('evil', path);
    assert.equal(res.status, 400, `${path}: ${res.text}`);
    assert.equal(JSON.parse(res.text).error.param, 'lora_path');
  }
  assert.equal(engine.adapterDir('evil'), undefined);
});

test('bad or duplicate adapter names are 400', async () => {
  assert.equal((await load('legal', 'legal')).status, 400);
  assert.equal((await load('fake-base', 'legal')).status, 400);
  assert.equal((await load('../x', 'legal')).status, 400);
  assert.equal((await post('/v1/load_lora_adapter', { lora_name: 'y' })).status, 400);
});

test('unloading: unknown is 404, in use is 409, otherwise it is gone', async () => {
  assert.equal((await post('/v1/unload_lora_adapter', { lora_name: 'nope' })).status, 404);
  const controller = new AbortController();
  const running = fetch(`${base}/v1/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: 'via-link', prompt: 'p', stream: true }),
    signal: controller.signal,
  });
  await waitUntil(() => engine.live.size === 1);
  assert.equal((await post('/v1/unload_lora_adapter', { lora_name: 'via-link' })).status, 409);
  controller.abort();
  await running.catch(() => {});
  await waitUntil(() => engine.live.size === 0);
  assert.equal((await post('/v1/unload_lora_adapter', { lora_name: 'via-link' })).status, 200);
  assert.equal((await post('/v1/completions', { model: 'via-link', prompt: 'p' })).status, 404);
});

test('without an adapters folder, runtime loading is disabled with a message', async () => {
  const plain = createServer(new FakeEngine());
  const { port } = await plain.listen(0, '127.0.0.1');
  const res = await fetch(`http://127.0.0.1:${port}/v1/load_lora_adapter`, {
    method: 'POST',
    body: JSON.stringify({ lora_name: 'a', lora_path: 'a' }),
  });
  assert.equal(res.status, 404);
  assert.match(((await res.json()) as { error: { message: string } }).error.message, /disabled/);
  await plain.close();
});
