/**
 * POST /v1/load_lora_adapter with hostile adapter folders: each is a 400 naming the problem,
 * answered at once (no FIFO or /dev/zero hang, no symlink out of --adapters-dir, no backtracking
 * regex), quoting no file content, while /health keeps answering.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ChatPipeline } from '../../src/infer/pipeline.ts';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { LoraAdapter } from '../../src/peft/adapter.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { adapterTensors, saveAdapter } from '../../src/peft/io.ts';
import { ModelServeEngine } from '../../src/serve/model-engine.ts';
import { createServer, type LoraforgeServer } from '../../src/serve/server.ts';
import { makeRandomChatModel, useCpuBackend } from '../helpers.ts';

const root = realpathSync(mkdtempSync(join(tmpdir(), 'lf-hostile-')));
const adaptersDir = join(root, 'adapters');
const good = join(adaptersDir, 'good');
let server: LoraforgeServer;
let pipeline: ChatPipeline;
let base: string;

/** A copy of the good adapter with one thing changed. */
function variant(name: string, change: (dir: string) => void): string {
  const dir = join(adaptersDir, name);
  cpSync(good, dir, { recursive: true });
  change(dir);
  return name;
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const path = join(dir, 'adapter_config.json');
  const config = JSON.parse(readFileSync(path, 'utf8'));
  edit(config);
  writeFileSync(path, JSON.stringify(config));
}

before(async () => {
  await useCpuBackend();
  const modelDir = await makeRandomChatModel(join(root, 'model'));
  pipeline = await ChatPipeline.load({ model: modelDir });
  const adapter = LoraAdapter.create(
    pipeline.model,
    makeLoraConfig({ r: 2, targetModules: ['q_proj', 'v_proj'] }),
    1,
  );
  await saveAdapter(good, adapter);
  const tensors = await adapterTensors(adapter);
  adapter.dispose();
  variant('nan-weights', (dir) => {
    (tensors[0]!.data as Float32Array)[3] = NaN;
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors);
  });
  variant('fifo', (dir) => {
    rmSync(join(dir, 'adapter_config.json'));
    assert.equal(spawnSync('mkfifo', [join(dir, 'adapter_config.json')]).status, 0);
  });
  variant('dev-zero', (dir) => {
    rmSync(join(dir, 'adapter_model.safetensors'));
    symlinkSync('/dev/zero', join(dir, 'adapter_model.safetensors'));
  });
  mkdirSync(join(root, 'outside'));
  cpSync(join(good, 'adapter_model.safetensors'), join(root, 'outside', 'w.safetensors'));
  variant('weights-outside', (dir) => {
    rmSync(join(dir, 'adapter_model.safetensors'));
    symlinkSync(join(root, 'outside', 'w.safetensors'), join(dir, 'adapter_model.safetensors'));
  });
  variant('passwd', (dir) =>
    writeFileSync(join(dir, 'adapter_config.json'), 'root:x:0:0:root:/root:/bin/bash\n'),
  );
  variant('backtracking', (dir) =>
    editConfig(dir, (c) => (c.target_modules = '([a-z_.0-9]+)+X|.*[qv]_proj')),
  );
  variant('bad-regex', (dir) => editConfig(dir, (c) => (c.target_modules = '(q_proj')));
  variant('huge-alpha', (dir) => editConfig(dir, (c) => (c.lora_alpha = 1e30)));
  const engine = new ModelServeEngine(pipeline, 'tiny');
  server = createServer(engine, { adaptersDir });
  const { port } = await server.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await server.close();
  pipeline.dispose();
  rmSync(root, { recursive: true, force: true });
});

async function load(name: string): Promise<{ status: number; message: string; ms: number }> {
  const start = performance.now();
  const res = await fetch(`${base}/v1/load_lora_adapter`, {
    method: 'POST',
    body: JSON.stringify({ lora_name: name, lora_path: name }),
  });
  const text = await res.text();
  const ms = performance.now() - start;
  const message = res.status === 200 ? text : (JSON.parse(text).error.message as string);
  return { status: res.status, message, ms };
}

const cases: [string, RegExp][] = [
  ['nan-weights', /holds NaN at index 3; adapter weights must be finite/],
  ['fifo', /adapter_config\.json: is a FIFO, expected a regular file/],
  ['dev-zero', /adapter_model\.safetensors: links outside the folder/],
  ['weights-outside', /adapter_model\.safetensors: links outside the folder/],
  ['passwd', /adapter_config\.json: invalid JSON at line 1, column 1/],
  ['bad-regex', /target_modules "\(q_proj" is not a valid regular expression/],
  ['huge-alpha', /lora_alpha must be <= 65536 \(got 1e\+30\)/],
];

for (const [name, expected] of cases) {
  test(`a hostile adapter (${name}) is a quick 400 naming the problem`, async () => {
    const r = await load(name);
    assert.equal(r.status, 400, r.message);
    assert.match(r.message, expected);
    assert.doesNotMatch(r.message, /root:x|\/bin\/bash/);
    assert.ok(r.ms < 5000, `${r.ms} ms`);
    assert.equal((await fetch(`${base}/health`)).status, 200);
  });
}

test('a catastrophic-backtracking target_modules pattern matches in linear time', async () => {
  const r = await load('backtracking');
  assert.equal(r.status, 200, r.message);
  assert.ok(r.ms < 5000, `${r.ms} ms`);
});

test('the good adapter loads', async () => {
  assert.equal((await load('good')).status, 200);
});
