/** Prompts too long for the context are refused by byte length (413) before tokenizing. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadTokenizer } from '../../src/io/tokenizer.ts';
import { FakeEngine } from './fake-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';

const engine = new FakeEngine({ maxContext: 4096 });
let server: LoraforgeServer;
let base: string;

before(async () => {
  server = createServer(engine);
  const { port } = await server.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${port}`;
});

after(() => server.close());

async function post(path: string, body: unknown) {
  const res = await fetch(base + path, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { error: Record<string, unknown> } };
}

const megabyte = 'x'.repeat(1_000_000);

test('a 1 MB prompt is a 413 naming the limit, in every route', async () => {
  for (const [path, body] of [
    ['/v1/completions', { model: 'fake-base', prompt: megabyte }],
    [
      '/v1/chat/completions',
      { model: 'fake-base', messages: [{ role: 'user', content: megabyte }] },
    ],
  ] as const) {
    const r = await post(path, body);
    assert.equal(r.status, 413, path);
    assert.equal(r.body.error.code, 'prompt_too_large');
    assert.match(
      String(r.body.error.message),
      /at most 16384 bytes of prompt .*context is 4096 tokens/,
    );
  }
});

test('/health answers while 8 clients send 1 MB prompts', async () => {
  const floods = Array.from({ length: 8 }, () =>
    post('/v1/completions', { model: 'fake-base', prompt: megabyte }),
  );
  const start = performance.now();
  assert.equal((await fetch(`${base}/health`)).status, 200);
  const healthMs = performance.now() - start;
  for (const r of await Promise.all(floods)) assert.equal(r.status, 413);
  assert.ok(healthMs < 2000, `${healthMs} ms`);
});

test('the byte bound never refuses a prompt that fits: no token stands for more bytes', async () => {
  const tokenizer = await loadTokenizer(
    join(import.meta.dirname, '..', '..', 'assets', 'tiny-chat'),
  );
  const texts = [
    ' '.repeat(5000),
    '\n'.repeat(3000),
    '一二三四五六七八九十'.repeat(300),
    '😀🎉'.repeat(500),
    'The quick brown fox jumps over the lazy dog. '.repeat(200),
    '<|im_start|>user\nhi<|im_end|>'.repeat(100),
    '=-'.repeat(2000),
  ];
  for (const text of texts) {
    const tokens = tokenizer.encode(text, { addSpecialTokens: false }).length;
    const bytes = Buffer.byteLength(text);
    assert.ok(bytes <= tokens * tokenizer.maxTokenBytes, `${bytes} bytes, ${tokens} tokens`);
  }
});
