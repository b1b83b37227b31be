/**
 * `merge` then `chat --model <merged>` answers as `chat --adapter` does: the demo's identity
 * adapter (trained with the tutorial template) merged into a copy of the tiny model that has a
 * ChatML chat template of its own, as Qwen2-0.5B-Instruct does. Also `--dtype`, lowercase or not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CHATML_TEMPLATE } from '../../src/data/templates.ts';
import { TUTORIAL_CHAT_TEMPLATE } from '../../src/data/template-tutorial.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'loraforge.js');
const ADAPTER = join(ROOT, 'test', 'fixtures', 'demo-adapter');
const QUESTIONS: { question: string }[] = JSON.parse(
  readFileSync(join(ROOT, 'examples', 'identity-eval.json'), 'utf8'),
).identity;

const root = mkdtempSync(join(tmpdir(), 'lf-merge-'));
const base = join(root, 'chatml-base');
cpSync(join(ROOT, 'assets', 'tiny-chat'), base, { recursive: true });
const tokenizerConfigPath = join(base, 'tokenizer_config.json');
const tokenizerConfig = JSON.parse(readFileSync(tokenizerConfigPath, 'utf8'));
writeFileSync(
  tokenizerConfigPath,
  JSON.stringify({ ...tokenizerConfig, chat_template: CHATML_TEMPLATE }),
);

after(() => rmSync(root, { recursive: true, force: true }));

function run(args: string[], input?: string) {
  // merge runs on the main thread alone; the others get one worker thread, the machine is shared.
  const threads = args[0] === 'merge' ? [] : ['--threads', '1'];
  const r = spawnSync(process.execPath, [BIN, ...args, ...threads], {
    encoding: 'utf8',
    input,
    timeout: 180_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** The answers of `chat` to each question, the conversation reset in between. */
function chatAnswers(modelArgs: string[]): string[] {
  const input = QUESTIONS.map(({ question }) => `${question}\n/reset\n`).join('');
  const out = run(['chat', ...modelArgs, '--max-new-tokens', '48'], input);
  return out
    .split('assistant> ')
    .slice(1)
    .map((chunk) => chunk.split('\n')[0]!);
}

test('the merged model answers the 20 held-out identity questions as the adapter does', () => {
  const merged = join(root, 'merged');
  const report = run(['merge', '--model', base, '--adapter', ADAPTER, '--out', merged]);
  assert.match(report, /replaced by the training template \(tutorial\)/);
  const recorded = JSON.parse(readFileSync(join(merged, 'loraforge.json'), 'utf8'));
  assert.equal(recorded.template.name, 'tutorial');
  const mergedTokenizer = JSON.parse(readFileSync(join(merged, 'tokenizer_config.json'), 'utf8'));
  assert.equal(mergedTokenizer.chat_template, TUTORIAL_CHAT_TEMPLATE);

  const viaAdapter = chatAnswers(['--model', base, '--adapter', ADAPTER]);
  const viaMerged = chatAnswers(['--model', merged]);
  assert.equal(viaAdapter.length, 20);
  assert.ok(viaAdapter.filter((a) => a.includes('小李')).length >= 15, viaAdapter.join('\n'));
  assert.deepEqual(viaMerged, viaAdapter);
});

test('merge --dtype is lowercase (any case accepted), converts every float tensor and config.json', () => {
  for (const [flag, dtype, torchDtype] of [
    ['bf16', 'BF16', 'bfloat16'],
    ['F32', 'F32', 'float32'],
  ] as const) {
    const out = join(root, `merged-${flag}`);
    run(['merge', '--model', base, '--adapter', ADAPTER, '--out', out, '--dtype', flag]);
    const file = SafetensorsFile.open(join(out, 'model.safetensors'));
    const dtypes = new Set(file.names().map((name) => file.info(name).dtype));
    file.close();
    assert.deepEqual([...dtypes], [dtype]);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    assert.equal(config.torch_dtype, torchDtype);
  }
  const bad = spawnSync(
    process.execPath,
    [
      BIN,
      'merge',
      '--model',
      base,
      '--adapter',
      ADAPTER,
      '--out',
      join(root, 'x'),
      '--dtype',
      'f64',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--dtype f64: expected one of f32, bf16, f16/);
});
