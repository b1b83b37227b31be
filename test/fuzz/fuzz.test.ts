/**
 * Seeded fuzzing of the parsers that take untrusted bytes: dataset readers (.json, .jsonl, .csv
 * and the format detection after them), the safetensors header parser, and the server's request
 * validation (through HTTP, so whatever validates chat/completions bodies is covered). Each input
 * starts from a corpus of real and known-hostile cases and is mutated; the property is that every
 * one ends in a result or in the error type meant for users (LoraforgeError; an HTTP status below
 * 500), never a TypeError, RangeError, hang or crash. Bounded: a fixed number of cases per
 * target, well under the 60 s budget.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { detectFormat, toConversation } from '../../src/data/formats.ts';
import { parseRecords } from '../../src/data/records.ts';
import { SafetensorsBuffer } from '../../src/io/safetensors-buffer.ts';
import { encodeSafetensors } from '../../src/io/safetensors.ts';
import { FakeEngine } from '../serve/fake-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const SEED = Number(process.env.LF_FUZZ_SEED ?? 20261202);
const CASES = Number(process.env.LF_FUZZ_CASES ?? 1500);
const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'data');

class Mutator {
  private readonly rng: Rng;
  constructor(seed: number) {
    this.rng = new Rng(seed);
  }
  int(n: number): number {
    return this.rng.nextU32() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** One to four edits: byte flips, inserted tokens, deletions, truncation, duplication. */
  mutate(bytes: Uint8Array, tokens: readonly string[]): Uint8Array {
    let out = Buffer.from(bytes);
    for (let edits = 1 + this.int(4); edits > 0; edits--) {
      const at = out.length ? this.int(out.length + 1) : 0;
      switch (this.int(6)) {
        case 0:
          if (out.length) out[this.int(out.length)] = this.int(256);
          break;
        case 1:
          out = Buffer.concat([
            out.subarray(0, at),
            Buffer.from(this.pick(tokens)),
            out.subarray(at),
          ]);
          break;
        case 2:
          out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + this.int(16))]);
          break;
        case 3:
          out = out.subarray(0, at);
          break;
        case 4:
          out = Buffer.concat([out, out.subarray(at)]);
          break;
        default:
          out = Buffer.concat([
            out.subarray(0, at),
            Buffer.from(this.pick(tokens).repeat(1 + this.int(2000))),
            out.subarray(at),
          ]);
      }
    }
    return out;
  }
}

/** Runs `fn`; anything thrown must be a LoraforgeError. */
function mustBeUserError(fn: () => unknown, describe: () => string): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof LoraforgeError))
      assert.fail(
        `${(err as Error)?.name}: ${(err as Error)?.message?.slice(0, 200)}\ninput: ${describe()}`,
      );
  }
}

const preview = (bytes: Uint8Array) =>
  JSON.stringify(Buffer.from(bytes.subarray(0, 120)).toString('latin1'));

const JSON_TOKENS = [
  '[',
  ']',
  '{',
  '}',
  '"',
  ',',
  ':',
  '\\',
  '\\u',
  'null',
  '1e999',
  '-0',
  '\n',
  '\r\n',
  '\u0000',
  '\xff',
  '\ufeff',
  '"instruction"',
  '"output"',
  '"messages"',
  '"conversations"',
  '"role"',
  '"content"',
  '"from"',
  '"value"',
  '"data"',
  '{{name}}',
  '"__proto__"',
  '"constructor"',
];

const DATASET_CORPUS: [string, string][] = [
  ...readdirSync(FIXTURES)
    .filter((f) => /\.(json|jsonl|csv)$/.test(f))
    .map((f): [string, string] => [f, readFileSync(join(FIXTURES, f), 'latin1')]),
  ['deep.json', '['.repeat(200_000)],
  ['closed.json', '['.repeat(50_000) + ']'.repeat(50_000)],
  ['proto.json', '[{"__proto__": {"instruction": 1}, "output": "x"}]'],
  ['huge-record.jsonl', `{"instruction": "hi", "output": "${'word '.repeat(100_000)}"}\n`],
  ['quotes.csv', 'instruction,output\n"a ""quoted"" one","multi\nline"\n"unterminated,x\n'],
  ['bom.jsonl', '\ufeff{"instruction": "a", "output": "b"}\n'],
];

test('fuzz: dataset readers and format detection end in a result or a LoraforgeError', () => {
  const m = new Mutator(SEED);
  for (let i = 0; i < CASES; i++) {
    const [name, text] = m.pick(DATASET_CORPUS);
    const ext =
      i % 7 === 0 ? m.pick(['.json', '.jsonl', '.csv']) : name.slice(name.lastIndexOf('.'));
    const bytes = m.mutate(Buffer.from(text, 'latin1'), JSON_TOKENS);
    const decoded = new TextDecoder().decode(bytes);
    mustBeUserError(
      () => {
        for (const record of parseRecords(decoded, `fuzz${ext}`)) {
          toConversation(record, detectFormat(record));
        }
      },
      () => `${name} as ${ext}: ${preview(bytes)}`,
    );
  }
});

function safetensorsCorpus(): Uint8Array[] {
  const one = (chunks: Uint8Array[]) => Buffer.concat(chunks);
  const header = (json: string) => {
    const body = Buffer.from(json);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(body.length));
    return Buffer.concat([length, body]);
  };
  return [
    one(encodeSafetensors({ w: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } })),
    one(
      encodeSafetensors({
        a: { dtype: 'BF16', shape: [4], data: new Uint16Array(4) },
        b: { dtype: 'I64', shape: [1], data: new BigInt64Array(1) },
      }),
    ),
    header(
      JSON.stringify({
        big: { dtype: 'U8', shape: [3 * 2 ** 30], data_offsets: [0, 3 * 2 ** 30] },
      }),
    ),
    header(JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 53], data_offsets: [0, 4] } })),
    header('['.repeat(100_000)),
    header(
      JSON.stringify({
        __metadata__: { format: 'pt' },
        w: { dtype: 'F32', shape: [-1], data_offsets: [4, 0] },
      }),
    ),
    Buffer.from([255, 255, 255, 255, 255, 255, 255, 255]),
  ];
}

const HEADER_TOKENS = [
  '"dtype"',
  '"F32"',
  '"BF16"',
  '"shape"',
  '"data_offsets"',
  '[0,',
  '9007199254740993',
  '-1',
  '1e308',
  '"__metadata__"',
  '{',
  '}',
  '[',
  ']',
  '\u0000',
  '\xff',
];

test('fuzz: the safetensors header parser ends in a reader or a LoraforgeError', () => {
  const m = new Mutator(SEED + 1);
  const corpus = safetensorsCorpus();
  for (let i = 0; i < CASES; i++) {
    const bytes = m.mutate(m.pick(corpus), HEADER_TOKENS);
    mustBeUserError(
      () => {
        const file = new SafetensorsBuffer(bytes, 'fuzz.safetensors');
        // Reading is part of the contract: a header that validates must describe bytes that exist.
        for (const name of file.names()) if (file.info(name).byteLength < 1 << 20) file.read(name);
      },
      () => preview(bytes),
    );
  }
});

let server: LoraforgeServer;
let base: string;
before(async () => {
  server = createServer(new FakeEngine({ maxContext: 256 }), { maxBodyBytes: 1 << 20 });
  base = `http://127.0.0.1:${(await server.listen(0, '127.0.0.1')).port}`;
});
after(() => server.close());

const REQUEST_CORPUS = [
  { model: 'fake-base', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 },
  {
    model: 'fake-base',
    messages: [
      { role: 'system', content: 's' },
      { role: 'user', content: [{ type: 'text', text: 'x' }] },
    ],
    stream: true,
    max_tokens: 2,
    stream_options: { include_usage: true },
  },
  {
    model: 'fake-base',
    prompt: 'abc',
    max_tokens: 2,
    temperature: 0.5,
    top_p: 0.9,
    stop: ['\n', 'x'],
  },
  { model: 'fake-base', messages: [{ role: 'user', content: 'x'.repeat(1000) }] },
  { model: 'nope', messages: [] },
  {
    model: 'fake-base',
    messages: [{ role: 'tool', content: null }],
    temperature: -1,
    top_p: 0,
    top_k: -3,
    logprobs: true,
    n: 5,
    seed: 1e300,
  },
];
const REQUEST_TOKENS = [
  'null',
  'true',
  '-1',
  '1e309',
  '0',
  '[]',
  '{}',
  '"',
  '"x"',
  ',',
  ':',
  '{"role":"user","content":"y"}',
  '"max_tokens":',
  '"stream":true',
  '"messages":',
  '"prompt":',
  '\u0000',
  '\xff',
  '['.repeat(1000),
];

test('fuzz: chat and completion request bodies get a response below 500', async () => {
  const m = new Mutator(SEED + 2);
  const statuses = new Map<number, number>();
  for (let i = 0; i < Math.min(CASES, 800); i++) {
    const path = m.pick(['/v1/chat/completions', '/v1/completions']);
    const body = m.mutate(Buffer.from(JSON.stringify(m.pick(REQUEST_CORPUS))), REQUEST_TOKENS);
    const res = await fetch(base + path, { method: 'POST', body: new Uint8Array(body).buffer });
    await res.arrayBuffer();
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    assert.ok(res.status < 500, `${res.status} for ${path} ${preview(body)}`);
  }
  assert.ok(
    (statuses.get(200) ?? 0) > 0 && (statuses.get(400) ?? 0) > 0,
    JSON.stringify([...statuses]),
  );
  assert.equal((await fetch(`${base}/health`)).status, 200);
});
