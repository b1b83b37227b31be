/**
 * `loraforge chat` through the real bin in a pseudo-terminal (util-linux `script`), as a person
 * uses it: an answer stopped by Ctrl-C, /help answered locally, the up arrow recalling the last
 * line, and Ctrl-C twice at the prompt leaving with exit code 0. Skipped where `script` is missing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'loraforge.js');
const hasScript = spawnSync('script', ['--version']).status === 0;

test(
  'chat in a terminal: Ctrl-C stops an answer, /help, history, Ctrl-C twice quits',
  { skip: !hasScript && 'util-linux script is not installed' },
  async () => {
    // The ChatML template on the tutorial-format tiny model, sampled: a long answer to interrupt.
    const command = [
      process.execPath,
      BIN,
      'chat',
      '--model',
      join(ROOT, 'assets', 'tiny-chat'),
      '--template',
      'chatml',
      '--temperature',
      '1',
      '--seed',
      '3',
      '--max-new-tokens',
      '500',
      '--threads',
      '1',
    ]
      .map((arg) => `'${arg}'`)
      .join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.on('data', (chunk) => (screen += chunk));
    const until = async (pattern: RegExp) => {
      for (let i = 0; i < 600 && !pattern.test(screen); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(screen, pattern);
    };
    const type = (keys: string) => child.stdin.write(keys);
    await until(/you> /);
    type('hello there\r');
    await until(/assistant> \S/);
    type('\x03');
    await until(/\[stopped\]/);
    type('/help\r');
    await until(/\/adapter <dir>/);
    type('/reset\r');
    await until(/new conversation/);
    // Up three times (/reset, /help, "hello there"): the first conversation again, with the same
    // seed, so the same long answer to stop.
    type('\x1b[A\x1b[A\x1b[A\r');
    await until(/new conversation[\s\S]*assistant> \S/);
    type('\x03');
    await until(/\[stopped\][\s\S]*\[stopped\]/);
    type('\x03');
    await until(/Ctrl-C again to quit/);
    type('\x03');
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, screen);
    assert.doesNotMatch(screen, /\^\[\[A/, 'arrow keys are line editing, not text');
  },
);
