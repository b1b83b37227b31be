import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/util/rng.ts';
import { LoraforgeError } from '../../src/util/errors.ts';

test('equal seeds give equal streams, different seeds different ones', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(
    Array.from({ length: 5 }, () => b.nextU32()),
    xs,
  );
  assert.notDeepEqual(
    Array.from({ length: 5 }, () => c.nextU32()),
    xs,
  );
  for (const x of xs) assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32);
});

// First outputs for seed 0; a change here breaks resuming from existing checkpoints.
const PINNED_SEED0 = [3809008728, 1133695204, 53579671];

test('the stream is pinned (checkpoints from older versions must resume identically)', () => {
  const rng = new Rng(0);
  assert.deepEqual(
    Array.from({ length: 3 }, () => rng.nextU32()),
    PINNED_SEED0,
  );
});

test('state() / restore() continue the exact stream, including a pending Box-Muller spare', () => {
  const rng = new Rng(7);
  rng.normal(); // leaves the pair's second value pending
  const saved = JSON.parse(JSON.stringify(rng.state()));
  const expected = [rng.normal(), rng.uniform(), rng.int(0, 9), rng.normal()];
  const resumed = Rng.fromState(saved);
  assert.deepEqual(
    [resumed.normal(), resumed.uniform(), resumed.int(0, 9), resumed.normal()],
    expected,
  );
});

test('uniform, normal and int have the right ranges and rough moments', () => {
  const rng = new Rng(1);
  const n = 20000;
  let sum = 0;
  let sumSq = 0;
  const counts = new Array(6).fill(0);
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    assert.ok(u >= 0 && u < 1);
    const z = rng.normal(2, 3);
    sum += z;
    sumSq += (z - 2) ** 2;
    counts[rng.int(-2, 3) + 2]++;
  }
  assert.ok(Math.abs(sum / n - 2) < 0.1);
  assert.ok(Math.abs(Math.sqrt(sumSq / n) - 3) < 0.1);
  for (const c of counts) assert.ok(Math.abs(c - n / 6) < (n / 6) * 0.1, `counts ${counts}`);
});

test('shuffle permutes in place; permutation covers 0..n-1', () => {
  const rng = new Rng(5);
  const items = ['a', 'b', 'c', 'd', 'e', 'f'];
  const shuffled = rng.shuffle([...items]);
  assert.deepEqual([...shuffled].sort(), items);
  const perm = rng.permutation(100);
  assert.deepEqual(
    [...perm].sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.notDeepEqual(
    perm,
    Array.from({ length: 100 }, (_, i) => i),
  );
});

test('bad arguments and corrupt states are user errors', () => {
  const rng = new Rng(1);
  assert.throws(() => rng.int(3, 2), LoraforgeError);
  assert.throws(() => rng.int(0.5, 2), LoraforgeError);
  assert.throws(() => rng.restore({ s: [0, 0, 0, 0], spareNormal: null }), LoraforgeError);
  assert.throws(() => rng.restore({ s: [1, 2, 3] as never, spareNormal: null }), LoraforgeError);
  assert.throws(() => new Rng(NaN), LoraforgeError);
});
