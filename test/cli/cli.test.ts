/** The command line end to end: real processes, exit codes, one-line errors for bad input. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeRandomChatModel } from '../helpers.ts';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'loraforge.js');
const root = mkdtempSync(join(tmpdir(), 'lf-cli-'));
const model = join(root, 'model');

function run(
  args: string[],
  input?: string,
  opts: { nodeArgs?: string[]; env?: Record<string, string> } = {},
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...(opts.nodeArgs ?? []), BIN, ...args], {
    encoding: 'utf8',
    input,
    timeout: 120_000,
    env: { ...process.env, ...opts.env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of the model folder with one thing broken. */
function brokenCopy(name: string, breakIt: (dir: string) => void): string {
  const dir = join(root, name);
  cpSync(model, dir, { recursive: true });
  breakIt(dir);
  return dir;
}

function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('hint:') && l !== '(run with --help for usage)');
  assert.equal(lines.length, 1, `expected one error line, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

/** For commands that print progress first: exactly one `error:` line, no stack trace. */
function assertErrorLine(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.split(/[\r\n]/).filter((l) => l.startsWith('error:'));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0]!, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

before(() => makeRandomChatModel(model));
after(() => rmSync(root, { recursive: true, force: true }));

test('--help lists the commands', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  for (const cmd of ['demo', 'train', 'generate', 'chat', 'eval', 'serve', 'merge', 'download'])
    assert.match(r.stdout, new RegExp(`\\b${cmd}\\b`));
});

for (const precision of [[], ['--bf16']]) {
  test(
    `generate ${precision.join(' ')} streams a reply from a model folder`.replace('  ', ' '),
    () => {
      const r = run([
        'generate',
        '--model',
        model,
        '--prompt',
        'hello',
        '--max-new-tokens',
        '5',
        '--device',
        'cpu',
        ...precision,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.trim().length > 0);
    },
  );
}

test('chat reads turns from stdin until /exit', () => {
  const r = run(
    ['chat', '--model', model, '--max-new-tokens', '4'],
    'hello\nwhat is 2 + 2?\n/exit\n',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.match(/assistant> /g)?.length, 2);
});

test('a config with an unknown architecture is one clear error line', () => {
  const dir = brokenCopy('gpt2', (d) => {
    const config = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(
      join(d, 'config.json'),
      JSON.stringify({ ...config, architectures: ['GPT2LMHeadModel'] }),
    );
  });
  assertOneLineError(
    run(['generate', '--model', dir, '--prompt', 'hi']),
    /unsupported architecture "GPT2LMHeadModel"/,
  );
});

test('a truncated safetensors file is one clear error line', () => {
  const dir = brokenCopy('truncated', (d) => {
    const file = join(d, 'model.safetensors');
    truncateSync(file, statSync(file).size - 100);
  });
  assertOneLineError(
    run(['generate', '--model', dir, '--prompt', 'hi']),
    /model\.safetensors: not a valid safetensors file .*outside/,
  );
});

test('a corrupted safetensors header is one clear error line', () => {
  const dir = brokenCopy('corrupt', (d) => {
    const file = join(d, 'model.safetensors');
    const bytes = readFileSync(file);
    bytes.writeBigUInt64LE(2n ** 40n, 0);
    writeFileSync(file, bytes);
  });
  assertOneLineError(run(['generate', '--model', dir, '--prompt', 'hi']), /model\.safetensors/);
});

test('a missing tokenizer is one clear error line', () => {
  const dir = brokenCopy('no-tokenizer', (d) => rmSync(join(d, 'tokenizer.json')));
  assertOneLineError(run(['generate', '--model', dir, '--prompt', 'hi']), /tokenizer\.json/);
});

test('a malformed dataset line names the file and line, before any training', () => {
  const data = join(root, 'bad.jsonl');
  writeFileSync(data, '{"instruction": "hi", "output": "hello"}\n{"instruction": "oops"\n');
  const r = run([
    'train',
    '--model',
    model,
    '--dataset',
    data,
    '--output-dir',
    join(root, 'never'),
  ]);
  assertOneLineError(r, /bad\.jsonl:2/);
});

test('train → chat: the adapter folder is what PEFT writes, and chat uses its template', () => {
  const out = join(root, 'adapter');
  const dataset = join(import.meta.dirname, '..', '..', 'examples', 'identity.json');
  const r = run([
    'train',
    '--model',
    model,
    '--dataset',
    dataset,
    '--set',
    'name=小李,author=小张',
    '--output-dir',
    out,
    '--max-steps',
    '2',
    '--logging-steps',
    '1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /next: +loraforge chat --model/);
  for (const file of [
    'adapter_config.json',
    'adapter_model.safetensors',
    'loraforge.json',
    'metrics.jsonl',
    'loss.svg',
    'loss.png',
  ]) {
    assert.ok(statSync(join(out, file)).size > 0, file);
  }
  const meta = JSON.parse(readFileSync(join(out, 'loraforge.json'), 'utf8'));
  assert.equal(meta.template.name, 'tutorial');
  const chat = run(
    ['chat', '--model', model, '--adapter', out, '--max-new-tokens', '3'],
    'who are you?\n',
  );
  assert.equal(chat.code, 0, chat.stderr);
  assert.match(chat.stderr, /template: tutorial, adapter loaded/);
});

test('Ctrl-C during training saves a checkpoint, exits 130, and the printed command resumes it bit-identically', async () => {
  const { spawn } = await import('node:child_process');
  const { existsSync, readdirSync } = await import('node:fs');
  const out = join(root, 'interrupted');
  const dataset = join(import.meta.dirname, '..', '..', 'examples', 'identity.json');
  const args = [
    'train',
    '--model',
    model,
    '--dataset',
    dataset,
    '--output-dir',
    out,
    '--logging-steps',
    '1',
    '--lora-dropout',
    '0',
    // A schedule that does not depend on max_steps, so a shorter straight run is comparable.
    '--lr-scheduler-type',
    'constant',
  ];
  const child = spawn(process.execPath, [BIN, ...args, '--max-steps', '100000'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  const start = Date.now();
  while (
    !existsSync(join(out, 'metrics.jsonl')) ||
    readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').length < 3
  ) {
    assert.ok(Date.now() - start < 60_000, 'training started');
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGINT');
  const code = await new Promise((r) => child.once('exit', r));
  assert.equal(code, 130);
  const checkpoints = readdirSync(out).filter((f) => /^checkpoint-\d+$/.test(f));
  assert.equal(checkpoints.length, 1, readdirSync(out).join(', '));
  const step = Number(checkpoints[0]!.split('-')[1]);
  assert.match(
    stdout,
    new RegExp(`stopped at step ${step}; last checkpoint: .*checkpoint-${step}/`),
  );
  assert.doesNotMatch(stdout, /--resume |adapter:|next:/);
  const printed = /resume with: loraforge (.*)/.exec(stdout)?.[1]?.split(' ');
  assert.ok(printed, stdout);
  for (const arg of [...args, '--max-steps', '100000', '--resume-from-checkpoint', 'latest'])
    assert.ok(printed.includes(arg), `${arg} in ${printed.join(' ')}`);
  // The printed command, with a nearer end instead of 100000 steps.
  printed[printed.indexOf('--max-steps') + 1] = String(step + 2);
  const resumed = run(printed);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resumed from .*checkpoint-${step} at step ${step}`));
  assert.match(resumed.stdout, new RegExp(`done: ${step + 2} steps`));
  const straight = join(root, 'straight');
  const args2 = args.map((a) => (a === out ? straight : a));
  assert.equal(run([...args2, '--max-steps', String(step + 2)]).code, 0);
  const weights = (dir: string) => readFileSync(join(dir, 'adapter_model.safetensors'));
  assert.ok(weights(out).equals(weights(straight)), 'resumed adapter = uninterrupted adapter');
});

test('train into a non-empty output_dir is refused unless --overwrite-output-dir; a user README survives', () => {
  const out = join(root, 'user-folder');
  mkdirSync(out);
  writeFileSync(join(out, 'README.md'), '# my notes');
  const dataset = join(import.meta.dirname, '..', '..', 'examples', 'identity.json');
  const args = [
    'train',
    '--model',
    model,
    '--dataset',
    dataset,
    '--output-dir',
    out,
    '--max-steps',
    '1',
  ];
  assertOneLineError(run(args), /user-folder: the output folder is not empty/);
  assert.equal(run([...args, '--overwrite-output-dir']).code, 0);
  assert.equal(readFileSync(join(out, 'README.md'), 'utf8'), '# my notes');
  assert.ok(statSync(join(out, 'adapter_model.safetensors')).size > 0);
});

test('a full disk is one error line with a hint, and the earlier checkpoints survive', async () => {
  const { listCheckpoints, readCheckpoint } = await import('../../src/train/checkpoint-files.ts');
  const out = join(root, 'disk-full');
  const dataset = join(import.meta.dirname, '..', '..', 'examples', 'identity.json');
  const r = run(
    [
      'train',
      '--model',
      model,
      '--dataset',
      dataset,
      '--output-dir',
      out,
      '--max-steps',
      '5',
      '--save-steps',
      '1',
    ],
    undefined,
    {
      nodeArgs: ['--import', join(import.meta.dirname, '..', 'fixtures', 'cli', 'enospc.mjs')],
      env: { LF_ENOSPC_PATH: 'checkpoint-3' },
    },
  );
  assertErrorLine(r, /ENOSPC: no space left on device.*checkpoint-3/);
  assert.match(r.stderr, /hint: the disk is full/);
  const kept = listCheckpoints(out);
  assert.deepEqual(
    kept.map((c) => c.step),
    [1, 2],
  );
  for (const { path } of kept) readCheckpoint(path);
});

test('serve: a port in use, a port out of range and an unknown dtype are one error line each', async () => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const inUse = run(['serve', '--model', model, '--port', String(port), '--device', 'cpu']);
    assertErrorLine(inUse, /EADDRINUSE/);
    assert.match(inUse.stderr, /hint: another program listens on that port/);
  } finally {
    blocker.close();
  }
  assertOneLineError(
    run(['serve', '--model', model, '--port', '70000']),
    /--port 70000: a port is from 0 to 65535/,
  );
  assertOneLineError(
    run(['serve', '--model', model, '--dtype', 'f64']),
    /--dtype f64: expected one of/,
  );
});

test('a config.json that is a folder and an output_dir that is a file are one error line each', () => {
  const dir = brokenCopy('config-dir', (d) => {
    rmSync(join(d, 'config.json'));
    mkdirSync(join(d, 'config.json'));
  });
  assertOneLineError(run(['generate', '--model', dir, '--prompt', 'hi']), /config\.json/);
  const file = join(root, 'out-file');
  writeFileSync(file, 'x');
  const dataset = join(import.meta.dirname, '..', '..', 'examples', 'identity.json');
  assertOneLineError(
    run(['train', '--model', model, '--dataset', dataset, '--output-dir', file]),
    /out-file: is a file/,
  );
});

test('--debug adds the stack trace to an error', () => {
  const r = run(['generate', '--model', join(root, 'nowhere'), '--prompt', 'hi', '--debug']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*nowhere/);
  assert.match(r.stderr, /\n +at /);
});
