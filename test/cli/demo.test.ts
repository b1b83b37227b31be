/** Fast end-to-end runs of `loraforge demo` on the shipped tiny chat model. */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');

/** `loraforge demo` for 3 steps on 2 identity and 2 general questions, into a temp folder. */
function quickDemo(
  extraArgs: string[],
  check: (r: SpawnSyncReturns<string>, out: string) => void,
): void {
  const dir = mkdtempSync(join(tmpdir(), 'lf-demo-'));
  try {
    const full = JSON.parse(readFileSync(join(ROOT, 'examples', 'identity-eval.json'), 'utf8'));
    const evalPath = join(dir, 'eval.json');
    writeFileSync(
      evalPath,
      JSON.stringify({
        ...full,
        identity: full.identity.slice(0, 2),
        general: full.general.slice(0, 2),
      }),
    );
    const out = join(dir, 'run');
    const r = spawnSync(
      process.execPath,
      [
        join(ROOT, 'bin', 'loraforge.js'),
        'demo',
        '--output-dir',
        out,
        '--eval',
        evalPath,
        '--max-steps',
        '3',
        ...extraArgs,
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    check(r, out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('loraforge demo: before answers, LoRA fine-tune, after answers, adapter and plot', () => {
  quickDemo([], (r, out) => {
    assert.match(r.stdout, /1\/3 +asking the base model 4 held-out questions/);
    assert.match(r.stdout, /trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%/);
    assert.match(r.stdout, /identity hit rate/);
    assert.match(r.stdout, /next: +loraforge chat --model \S+ --adapter \S+\n/);
    assert.doesNotMatch(r.stdout, /frozen base/);
    for (const file of [
      'adapter_config.json',
      'adapter_model.safetensors',
      'loss.png',
      'demo-eval.json',
    ]) {
      assert.ok(statSync(join(out, file)).size > 0, file);
    }
    const results = JSON.parse(readFileSync(join(out, 'demo-eval.json'), 'utf8'));
    assert.ok(results.before && results.after, 'before and after are recorded');
  });
});

test('loraforge demo --quantization nf4: QLoRA on the quantized base, and chat is told to load it so', () => {
  quickDemo(['--quantization', 'nf4', '--bnb-4bit-use-double-quant'], (r, out) => {
    assert.match(r.stdout, /frozen base: decoder projections quantized to nf4, double-quantized/);
    assert.match(r.stdout, /--quantization nf4 --bnb-4bit-use-double-quant\n/);
    const saved = JSON.parse(readFileSync(join(out, 'loraforge.json'), 'utf8'));
    assert.equal(JSON.stringify(saved).includes('"quantization":"nf4"'), true);
  });
});
