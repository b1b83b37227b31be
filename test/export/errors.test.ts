/**
 * Bad input to `loraforge export`: what GGUF (or loraforge's mapping to it) cannot express fails
 * with one message naming the missing piece; outputs are never overwritten without --overwrite;
 * an export killed midway leaves no file under the final name.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ggufArchitecture } from '../../src/export/architectures.ts';
import { runExport } from '../../src/export/run.ts';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/models/load.ts';
import { writeRandomModel } from '../../src/models/random.ts';
import { saveAdapter } from '../../src/peft/io.ts';
import { makeRandomChatModel, TINY_CHAT_SHAPE } from '../helpers.ts';
import { loraforge, randomLoraAdapter, ROOT, TINY_CHAT } from './fixtures.ts';

let dir: string;
before(async () => {
  await selectBackend({ device: 'cpu' });
  dir = mkdtempSync(join(tmpdir(), 'lf-export-errors-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the tiny chat model whose files `edit` may change. */
function tinyCopy(name: string): string {
  const copy = join(dir, name);
  mkdirSync(copy);
  for (const f of readdirSync(TINY_CHAT)) copyFileSync(join(TINY_CHAT, f), join(copy, f));
  return copy;
}

function failure(args: string[]): string {
  const r = loraforge(args);
  assert.notEqual(r.status, 0, r.stdout);
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.length <= 2, `one message (and a hint), got:\n${r.stderr}`);
  return r.stderr;
}

test('an architecture without a GGUF mapping is named with what is missing', () => {
  // Every family loraforge loads has a mapping now: any other architecture name stands in.
  assert.throws(
    () => ggufArchitecture({ architecture: 'GPTNeoXForCausalLM' }, 'm/config.json'),
    (e: Error & { hint?: string }) =>
      /m\/config.json: no GGUF mapping for architecture GPTNeoXForCausalLM \(missing: its llama.cpp architecture name and tensor names\)/.test(
        e.message,
      ) && /Phi3ForCausalLM/.test(String(e.hint)),
  );
});

test('a pre-tokenizer llama.cpp has no name for: the error names tokenizer.ggml.pre', () => {
  const model = tinyCopy('odd-pre');
  const path = join(model, 'tokenizer.json');
  const json = JSON.parse(readFileSync(path, 'utf8'));
  json.pre_tokenizer.pretokenizers[0].pattern.Regex = '\\p{L}+|\\s+';
  writeFileSync(path, JSON.stringify(json));
  const err = failure(['export', '-m', model, '-o', join(dir, 'x.gguf')]);
  assert.match(
    err,
    /tokenizer\.json: the pre-tokenizer \("\\\\p\{L\}\+\|\\\\s\+"\) has no llama\.cpp name \(missing: tokenizer\.ggml\.pre\)/,
  );
  assert.equal(existsSync(join(dir, 'x.gguf')), false);
});

test('a tokenizer neither byte-level nor SentencePiece-shaped, and a tensor without a llama.cpp name, are refused by name', () => {
  // BPE over Metaspace ("▁") pieces like Llama 2's, but without byte fallback: characters outside
  // the vocabulary would become <unk> in transformers and bytes in llama.cpp.
  const model = tinyCopy('metaspace');
  const path = join(model, 'tokenizer.json');
  const json = JSON.parse(readFileSync(path, 'utf8'));
  const metaspace = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false };
  json.pre_tokenizer = metaspace;
  json.decoder = metaspace;
  writeFileSync(path, JSON.stringify(json));
  assert.match(
    failure(['export', '-m', model, '-o', join(dir, 'u.gguf')]),
    /a BPE tokenizer neither byte-level nor SentencePiece-shaped has no GGUF form in loraforge \(missing: a llama\.cpp tokenizer model for it\)/,
  );

  const extra = tinyCopy('extra-tensor');
  const file = SafetensorsFile.open(join(extra, 'model.safetensors'));
  const tensors = file.names().map((name) => ({ ...file.info(name), name, data: file.read(name) }));
  file.close();
  tensors.push({
    name: 'model.layers.0.self_attn.q_norm.weight',
    dtype: 'BF16',
    shape: [64],
    data: new Uint8Array(128),
  } as never);
  writeSafetensors(join(extra, 'model.safetensors'), tensors as never);
  assert.match(
    failure(['export', '-m', extra, '-o', join(dir, 'e.gguf')]),
    /tensor 'model\.layers\.0\.self_attn\.q_norm\.weight' has no llama\.cpp name for Qwen2ForCausalLM \(missing: its GGUF tensor mapping\)/,
  );
});

/**
 * Configs whose layers llama.cpp (node-llama-cpp 3.22.1's build) would compute differently, each
 * measured: its llama / mistral3 graphs attend past Ministral's sliding window, SmolLM3's NoPE
 * layers are fixed at every 4th, Gemma 3's query scale is fixed by the layer count, its qwen3
 * (like gemma3) fails to load a file with attention biases; its phi3 switches sliding windows off
 * and sizes q and the output matrix by the hidden size, and only phi3 reads LongRoPE's tables.
 */
const REFUSED: [name: string, config: Record<string, unknown>, message: RegExp][] = [
  [
    'ministral',
    {
      ...TINY_CHAT_SHAPE,
      architectures: ['MinistralForCausalLM'],
      sliding_window: 4,
      layer_types: ['sliding_attention', 'full_attention'],
    },
    /config\.json: layer 0 has a 4-key sliding window, RoPE; llama\.cpp's llama computes full attention, RoPE there \(missing: a GGUF key for this layer in llama\.cpp's llama\)/,
  ],
  [
    'smollm3',
    { ...TINY_CHAT_SHAPE, architectures: ['SmolLM3ForCausalLM'], no_rope_layers: [1, 0] },
    /layer 1 has full attention, no RoPE; llama\.cpp's smollm3 computes full attention, RoPE there/,
  ],
  [
    'gemma3',
    {
      ...TINY_CHAT_SHAPE,
      architectures: ['Gemma3ForCausalLM'],
      head_dim: 16,
      query_pre_attn_scalar: 8,
      sliding_window: 4,
      layer_types: ['sliding_attention', 'full_attention'],
    },
    /Gemma3ForCausalLM with query_pre_attn_scalar 8 cannot be exported \(missing: a key for the query scale; it uses 16 in llama\.cpp's gemma3\)/,
  ],
  [
    'qwen3',
    {
      ...TINY_CHAT_SHAPE,
      architectures: ['Qwen3ForCausalLM'],
      head_dim: 32,
      attention_bias: true,
    },
    /Qwen3ForCausalLM with attention_bias true cannot be exported \(missing: attention bias tensors in llama\.cpp's qwen3\)/,
  ],
  [
    'phi3 sliding window',
    { ...TINY_CHAT_SHAPE, architectures: ['Phi3ForCausalLM'], sliding_window: 4 },
    /layer 0 has a 4-key sliding window, RoPE; llama\.cpp's phi3 computes full attention, RoPE there/,
  ],
  [
    'phi3 head_dim',
    { ...TINY_CHAT_SHAPE, architectures: ['Phi3ForCausalLM'], head_dim: 32 },
    /Phi3ForCausalLM with head_dim 32 \(× 4 heads ≠ hidden_size 64\) cannot be exported \(missing: a query width other than the embedding length in llama\.cpp's phi3\)/,
  ],
  [
    'llama longrope',
    {
      ...TINY_CHAT_SHAPE,
      architectures: ['LlamaForCausalLM'],
      original_max_position_embeddings: 8,
      rope_scaling: {
        type: 'longrope',
        short_factor: [1, 1, 1, 1, 1, 1, 1, 1],
        long_factor: [2, 2, 2, 2, 2, 2, 2, 2],
      },
    },
    /longrope RoPE scaling on LlamaForCausalLM cannot be exported \(missing: rope_factors_long \/ rope_factors_short in llama\.cpp's llama\)/,
  ],
];

for (const [name, config, message] of REFUSED) {
  test(`${name}: layers llama.cpp would compute differently are refused, merged and as adapter`, async () => {
    const model = await makeRandomChatModel(join(dir, `refused-${name}`), 0, config);
    const out = join(dir, `refused-${name}.gguf`);
    await assert.rejects(runExport({ modelDir: model, format: 'gguf', type: 'f16', out }), message);
    const m = loadModel(model, { dtype: 'f32' });
    const adapterDir = join(dir, `refused-${name}-adapter`);
    const adapter = randomLoraAdapter(m, { r: 2, loraAlpha: 4, seed: 1 });
    await saveAdapter(adapterDir, adapter);
    adapter.dispose();
    m.dispose();
    await assert.rejects(
      runExport({ modelDir: model, adapterDir, format: 'gguf-adapter', type: 'f16', out }),
      message,
    );
    assert.equal(existsSync(out), false);
  });
}

test('unknown --type / --format and gguf-adapter without --adapter', () => {
  assert.match(
    failure(['export', '-m', TINY_CHAT, '--type', 'q3_k', '-o', join(dir, 't.gguf')]),
    /--type "q3_k" is not supported/,
  );
  assert.match(
    failure(['export', '-m', TINY_CHAT, '--format', 'onnx', '-o', join(dir, 't.gguf')]),
    /--format "onnx" is not supported/,
  );
  assert.match(
    failure(['export', '-m', TINY_CHAT, '--format', 'gguf-adapter', '-o', join(dir, 't.gguf')]),
    /needs --adapter/,
  );
});

test('an existing file is kept without --overwrite and replaced with it', () => {
  const out = join(dir, 'exists.gguf');
  writeFileSync(out, 'keep me');
  assert.match(failure(['export', '-m', TINY_CHAT, '-o', out]), /exists\.gguf already exists/);
  assert.equal(readFileSync(out, 'utf8'), 'keep me');
  const r = loraforge(['export', '-m', TINY_CHAT, '-o', out, '--overwrite']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(out).readUInt32LE(0), 0x46554747);
});

test('an export killed midway leaves no file under the final name', async () => {
  const model = join(dir, 'bigger');
  const config = JSON.parse(readFileSync(join(TINY_CHAT, 'config.json'), 'utf8'));
  writeRandomModel(
    model,
    { ...config, hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 6 },
    { dtype: 'BF16' },
  );
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(TINY_CHAT, f), join(model, f));
  const outDir = join(dir, 'killed');
  mkdirSync(outDir);
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin', 'loraforge.js'),
      'export',
      '-m',
      model,
      '--type',
      'q4_k_m',
      '-o',
      join(outDir, 'model.gguf'),
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise((resolve) => child.on('exit', resolve));
  // Kill as soon as the temporary file exists (the export is writing tensors).
  while (!readdirSync(outDir).some((f) => f.includes('.tmp-'))) {
    assert.equal(child.exitCode, null, 'the export finished before it could be killed');
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGKILL');
  await exited;
  assert.equal(existsSync(join(outDir, 'model.gguf')), false);
});
