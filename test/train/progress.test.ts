// util/progress.ts lives below train/, but its tests sit here with the other training utilities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar, type ProgressStream } from '../../src/util/progress.ts';

function fakeStream(isTTY: boolean): ProgressStream & { out: string } {
  return {
    isTTY,
    columns: 120,
    out: '',
    write(text: string) {
      this.out += text;
    },
  };
}

function fakeClock() {
  const clock = { ms: 0, now: () => clock.ms };
  return clock;
}

test('TTY: redraws in place at most every 100 ms with percent, count, rate, ETA and fields', () => {
  const stream = fakeStream(true);
  const clock = fakeClock();
  const bar = new ProgressBar({
    total: 100,
    label: 'train',
    unit: 'step',
    start: 0, // rate measured from construction
    stream,
    now: clock.now,
  });
  clock.ms = 1000;
  bar.update(10, { loss: '2.31', lr: '1e-4' });
  clock.ms = 1050;
  bar.update(11); // within 100 ms: not drawn
  assert.equal((stream.out.match(/\r/g) ?? []).length, 1);
  assert.match(
    stream.out,
    /^\rtrain  \[==.*\]   10%  10\/100  10\.0 step\/s  ETA 9\.0s  loss=2\.31  lr=1e-4\x1b\[K$/,
  );
  clock.ms = 2000;
  bar.tick(9, { loss: '2.10' });
  assert.match(stream.out, /20%  20\/100 .* loss=2\.10  lr=1e-4/);
  bar.done();
  assert.ok(stream.out.endsWith('\n'));
  bar.update(50);
  assert.ok(stream.out.endsWith('\n'), 'updates after done() are ignored');
});

test('non-TTY: plain lines, throttled to the plain interval, and a final line', () => {
  const stream = fakeStream(false);
  const clock = fakeClock();
  const bar = new ProgressBar({
    total: 4,
    label: 'eval',
    stream,
    now: clock.now,
    plainInterval: 8,
  });
  for (let i = 1; i <= 4; i++) {
    clock.ms = i * 3000;
    bar.update(i);
  }
  bar.done();
  const lines = stream.out.trimEnd().split('\n');
  assert.equal(lines.length, 3); // first update (3 s), the next one 8 s or more later (12 s), done()
  assert.ok(!stream.out.includes('\r') && !stream.out.includes('\x1b'));
  assert.match(lines.at(-1)!, /^eval  100%  4\/4  .* in 12\.0s$/);
});

test('unknown total shows the count only; the rate counts from the first update (resume)', () => {
  const stream = fakeStream(false);
  const clock = fakeClock();
  const bar = new ProgressBar({
    stream,
    now: clock.now,
    unit: 'B',
    formatValue: (n) => `${n / 1024} KiB`,
  });
  clock.ms = 1000;
  bar.update(1024); // e.g. a resumed download that already had 1 KiB
  clock.ms = 3000;
  bar.update(3072);
  assert.match(bar.render(), /^3 KiB  1\.02k B\/s  in 3\.0s$/);
});

test('log() prints a message above the bar without garbling it', () => {
  const stream = fakeStream(true);
  const bar = new ProgressBar({ total: 10, stream, now: () => 0 });
  bar.update(1);
  bar.log('eval_loss=1.23');
  assert.match(stream.out, /\r\x1b\[Keval_loss=1\.23\n\r.*10%/);
});

test('enabled: false draws nothing but still prints log() messages', () => {
  const stream = fakeStream(true);
  const bar = new ProgressBar({ total: 10, stream, enabled: false, now: () => 0 });
  bar.update(5);
  bar.log('hello');
  bar.done();
  assert.equal(stream.out, 'hello\n');
});

test('start: a resumed run counts only the steps made since', () => {
  const clock = fakeClock();
  const bar = new ProgressBar({
    total: 1000,
    start: 500,
    stream: fakeStream(false),
    now: clock.now,
  });
  clock.ms = 2000;
  bar.update(510);
  assert.match(bar.render(), /51%  510\/1,000  5\.00 it\/s  ETA 1m38s$/);
});
