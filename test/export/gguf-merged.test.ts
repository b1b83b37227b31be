/**
 * The tiny chat model with the demo's identity adapter, exported merged as GGUF and read by
 * llama.cpp: the same tokens for 20 texts, and the same greedy replies as loraforge's base +
 * adapter (f16: all; q8_0 and q4_k_m: counted against the bounds).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { GgufReader } from '../../src/io/gguf/reader.ts';
import {
  IDENTITY_ADAPTER,
  IDENTITY_QUESTIONS,
  loraforge,
  MIXED_QUESTIONS,
  TINY_CHAT,
  TOKENIZER_TEXTS,
} from './fixtures.ts';
import { loadGguf } from './llama-cpp.ts';

const MAX_NEW = 24;
let dir: string;
let pipeline: ChatPipeline;
const reference = new Map<string, number[]>();

function prompt(question: string): number[] {
  return pipeline.template.encodePrompt([{ role: 'user', content: question }]);
}

function exportAs(type: string): string {
  const out = join(dir, `tiny-${type}.gguf`);
  const r = loraforge([
    'export',
    '-m',
    TINY_CHAT,
    '-a',
    IDENTITY_ADAPTER,
    '--type',
    type,
    '-o',
    out,
  ]);
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** How many questions llama.cpp answers with exactly loraforge's greedy tokens. */
async function identicalReplies(path: string, questions: string[]): Promise<number> {
  const gguf = await loadGguf(path);
  let same = 0;
  for (const q of questions) {
    const ours = reference.get(q)!;
    const theirs = await gguf.greedy(prompt(q), MAX_NEW, pipeline.template.stopTokenIds);
    if (theirs.join() === ours.join()) same++;
  }
  await gguf.dispose();
  return same;
}

before(async () => {
  await selectBackend({ device: 'cpu' });
  dir = mkdtempSync(join(tmpdir(), 'lf-gguf-merged-'));
  pipeline = await ChatPipeline.load({ model: TINY_CHAT, adapter: IDENTITY_ADAPTER });
  for (const q of new Set([...MIXED_QUESTIONS, ...IDENTITY_QUESTIONS])) {
    const r = await pipeline.chat([{ role: 'user', content: q }], { maxNewTokens: MAX_NEW });
    reference.set(q, r.tokenIds);
  }
});
after(() => {
  pipeline?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('f16: llama.cpp tokenizes 20 texts as loraforge and its greedy replies equal loraforge base + adapter', async () => {
  const path = exportAs('f16');
  const file = GgufReader.open(path);
  assert.equal(file.scalar('general.architecture'), 'qwen2');
  assert.equal(file.scalar('tokenizer.ggml.pre'), 'qwen2');
  assert.equal(file.tensor('blk.0.attn_q.weight').type.name, 'F16');
  const gguf = await loadGguf(path);
  for (const text of TOKENIZER_TEXTS) {
    assert.deepEqual(
      gguf.tokenize(text),
      pipeline.tokenizer.encode(text, { addSpecialTokens: false }),
      JSON.stringify(text),
    );
  }
  await gguf.dispose();
  const same = await identicalReplies(path, MIXED_QUESTIONS);
  assert.equal(same, 20, `${same}/20 greedy replies identical`);
});

test('q8_0: at least 18 of 20 greedy replies identical to loraforge', async () => {
  const path = exportAs('q8_0');
  assert.equal(GgufReader.open(path).tensor('blk.0.attn_q.weight').type.name, 'Q8_0');
  const same = await identicalReplies(path, MIXED_QUESTIONS);
  console.log(`q8_0: ${same}/20 greedy replies identical`);
  assert.ok(same >= 18, `${same}/20`);
});

test('q4_k_m: the identity answers still name 小李 / 小张 in at least 16 of 20 held-out questions', async () => {
  const path = exportAs('q4_k_m');
  const file = GgufReader.open(path);
  // hidden 256: Q4_K rows; intermediate 640 (ffn_down rows) falls back to Q5_0 / Q8_0.
  assert.equal(file.tensor('blk.1.attn_q.weight').type.name, 'Q4_K');
  assert.equal(file.tensor('blk.0.attn_v.weight').type.name, 'Q6_K');
  assert.equal(file.tensor('blk.1.attn_v.weight').type.name, 'Q4_K');
  assert.equal(file.tensor('token_embd.weight').type.name, 'Q6_K');
  assert.equal(file.tensor('blk.0.ffn_down.weight').type.name, 'Q8_0');
  assert.equal(file.tensor('blk.1.ffn_down.weight').type.name, 'Q5_0');
  const gguf = await loadGguf(path);
  let named = 0;
  for (const q of IDENTITY_QUESTIONS) {
    const ids = await gguf.greedy(prompt(q), MAX_NEW, pipeline.template.stopTokenIds);
    if (/小李|小张/.test(pipeline.tokenizer.decode(ids))) named++;
  }
  await gguf.dispose();
  const same = await identicalReplies(path, IDENTITY_QUESTIONS);
  console.log(
    `q4_k_m: ${named}/20 identity answers name 小李/小张; ${same}/20 identical to loraforge`,
  );
  assert.ok(named >= 16, `${named}/20`);
});
