/**
 * `loraforge serve` started through the real bin on the shipped tiny model and the demo's
 * identity adapter (test/fixtures/demo-adapter), driven with the `openai` client as the README
 * shows: with no sampling fields a request gets the model's generation_config.json defaults
 * (greedy for the tiny model), so it answers exactly as `loraforge generate` does.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import OpenAI from 'openai';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'loraforge.js');
const MODEL = join(ROOT, 'assets', 'tiny-chat');
const ADAPTER = join(ROOT, 'test', 'fixtures', 'demo-adapter');
const PAGE = 'http://page.example';

let server: ChildProcess;
let startup = '';
let base = '';
let client: OpenAI;

before(async () => {
  server = spawn(
    process.execPath,
    [
      BIN,
      'serve',
      '--model',
      MODEL,
      '--adapter',
      `identity=${ADAPTER}`,
      '--port',
      '0',
      '--threads',
      '1',
      '--route',
      '/api/identity',
      '--route-model',
      'identity',
      '--allowed-origins',
      `${PAGE}/`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  base = await new Promise<string>((resolve, reject) => {
    server.stderr!.on('data', (chunk) => {
      startup += chunk;
      const match = /serving: +(http:\/\/[^/\s]+)\/v1/.exec(startup);
      if (match) resolve(match[1]!);
    });
    server.once('exit', (code) => reject(new Error(`serve exited ${code}: ${startup}`)));
  });
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(() => {
  server?.kill('SIGTERM');
});

function generate(prompt: string): string {
  const r = spawnSync(
    process.execPath,
    [BIN, 'generate', '--model', MODEL, '--adapter', ADAPTER, '--threads', '1', '-p', prompt],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.replace(/\n$/, '');
}

test('start-up names the device, model, adapters, sampling and URL', () => {
  assert.match(startup, /device: +cpu \((?:native|wasm) [^,]+, 1 thread\)/);
  assert.match(startup, /model: +.*tiny-chat.*template tutorial/);
  assert.match(startup, /adapters: +identity <- .*demo-adapter/);
  assert.match(startup, /sampling: +greedy/);
  assert.match(startup, /serving: +http:\/\/127\.0\.0\.1:\d+\/v1/);
});

test("the README's client snippet answers as `generate` does, and names 小李", async () => {
  const reply = await client.chat.completions.create({
    model: 'identity',
    messages: [{ role: 'user', content: '你是谁？' }],
  });
  const text = reply.choices[0]!.message.content!;
  assert.match(text, /小李/);
  assert.equal(text, generate('你是谁？'));
  const viaRoute = await fetch(`${base}/api/identity`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: '你是谁？' }),
  });
  assert.deepEqual(await viaRoute.json(), { text });
});

test('a browser preflight from an allowed origin is answered; others are refused', async () => {
  const preflight = (origin: string) =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
  const ok = await preflight(PAGE);
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get('access-control-allow-origin'), PAGE);
  assert.match(ok.headers.get('access-control-allow-methods')!, /POST/);
  assert.match(ok.headers.get('access-control-allow-headers')!, /authorization/);
  const other = await preflight('http://elsewhere.example');
  assert.equal(other.status, 403);
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  const models = await fetch(`${base}/v1/models`, { headers: { origin: PAGE } });
  assert.equal(models.headers.get('access-control-allow-origin'), PAGE);
});

test('top_k and seed reach the sampler: top_k 1 is greedy at any temperature, a seed repeats', async () => {
  const ask = async (fields: Record<string, unknown>) =>
    (
      await client.chat.completions.create({
        model: 'identity',
        messages: [{ role: 'user', content: 'What is 3 + 4?' }],
        max_tokens: 24,
        ...fields,
      })
    ).choices[0]!.message.content;
  const greedy = await ask({});
  assert.equal(await ask({ temperature: 2, top_k: 1 }), greedy);
  const seeded = { temperature: 1.5, seed: 7 };
  assert.equal(await ask(seeded), await ask(seeded));
});
