/**
 * The chat REPL driven directly through streams in terminal mode (as in a terminal: keys are
 * bytes, Ctrl-C is \x03, the up arrow \x1b[A), with a fake model that streams slowly.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { runChatRepl, type ChatModel } from '../../src/cli/chat-repl.ts';
import type { ChatMessage } from '../../src/data/templates.ts';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

/** Answers "echo: <last user message>" one character per tick, until told to stop. */
class FakeModel implements ChatModel {
  template = { name: 'tutorial' };
  adapter: string | null = null;
  readonly calls: ChatMessage[][] = [];
  /** Characters each answer streams; a long one leaves time to press Ctrl-C. */
  constructor(private readonly length = 0) {}

  async chat(
    messages: ChatMessage[],
    opts: { onText: (text: string) => void; shouldStop: () => boolean },
  ) {
    this.calls.push(messages.map((m) => ({ ...m })));
    const full = `echo: ${messages.at(-1)!.content}`.padEnd(this.length, '.');
    let text = '';
    for (const ch of full) {
      if (opts.shouldStop()) break;
      await tick();
      text += ch;
      opts.onText(ch);
    }
    return { text };
  }

  useAdapter(dir: string | null): void {
    if (dir === 'missing') throw new Error('missing: not an adapter folder');
    this.adapter = dir;
    this.template = { name: dir ? 'chatml' : 'tutorial' };
  }
}

function session(model: ChatModel, system?: string) {
  const input = new PassThrough();
  const output = new PassThrough();
  let printed = '';
  output.on('data', (chunk) => (printed += chunk));
  const done = runChatRepl(model, { input, output, terminal: true, system });
  return {
    done,
    printed: () => printed,
    type: async (keys: string) => {
      input.write(keys);
      await tick();
    },
    /** Waits until the output contains `text` (answers stream over ticks). */
    until: async (text: string | RegExp) => {
      for (let i = 0; i < 400; i++) {
        if (typeof text === 'string' ? printed.includes(text) : text.test(printed)) return;
        await tick();
      }
      assert.fail(`never printed ${text}; got:\n${printed}`);
    },
  };
}

test('/help, /system, /reset and /adapter are commands, never sent to the model', async () => {
  const model = new FakeModel();
  const s = session(model, 'be brief');
  await s.type('/help\r');
  await s.until('/adapter <dir>');
  await s.type('hi\r');
  await s.until('echo: hi');
  await s.type('/system You are 小李.\r');
  await s.type('who?\r');
  await s.until('echo: who?');
  await s.type('/reset\r');
  await s.type('again\r');
  await s.until('echo: again');
  await s.type('/adapter missing\r');
  await s.until('error: missing: not an adapter folder');
  await s.type('/adapter runs/identity\r');
  await s.until('(adapter runs/identity, template chatml; new conversation)');
  await s.type('/frobnicate\r');
  await s.until('unknown command /frobnicate');
  await s.type('/exit\r');
  await s.done;
  assert.deepEqual(model.calls, [
    [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
    ],
    [
      { role: 'system', content: 'You are 小李.' },
      { role: 'user', content: 'who?' },
    ],
    [
      { role: 'system', content: 'You are 小李.' },
      { role: 'user', content: 'again' },
    ],
  ]);
  assert.equal(model.adapter, 'runs/identity');
});

test('Ctrl-C stops the answer only; a second Ctrl-C at the prompt quits', async () => {
  const model = new FakeModel(2000);
  const s = session(model);
  await s.type('tell me everything\r');
  await s.until('echo: tell');
  await s.type('\x03');
  await s.until('[stopped]');
  // Still chatting, and the stopped answer is part of the conversation.
  await s.type('more\r');
  await s.until(/echo: more/);
  await s.type('\x03');
  await s.until(/\[stopped\][\s\S]*echo: more[^\n]*\[stopped\]/);
  assert.equal(model.calls[1]!.length, 3);
  assert.match(model.calls[1]![1]!.content, /^echo: tell/);
  await s.type('\x03');
  await s.until('Ctrl-C again to quit');
  await s.type('\x03');
  await s.done;
});

test('history: the up arrow brings back the previous line', async () => {
  const model = new FakeModel();
  const s = session(model);
  await s.type('first question\r');
  await s.until('echo: first question');
  await s.type('\x1b[A\r');
  await s.until(/echo: first question[\s\S]*echo: first question/);
  await s.type('/quit\r');
  await s.done;
  assert.equal(model.calls.length, 2);
});

test('piped input that ends while an answer streams: every buffered line is answered, no prompt after the end', async () => {
  const model = new FakeModel(12);
  const input = new PassThrough();
  const output = new PassThrough();
  let printed = '';
  output.on('data', (chunk) => (printed += chunk));
  // Both lines and the end of input arrive at once, long before the first answer is written
  // (Node 24 and later throw if the prompt is shown after readline closed).
  input.end('first\nsecond\n');
  await runChatRepl(model, { input, output, terminal: false });
  assert.deepEqual(
    model.calls.map((c) => c.at(-1)!.content),
    ['first', 'second'],
  );
  assert.ok(printed.endsWith('echo: second\n'), `output ends with a prompt:\n${printed}`);
});
