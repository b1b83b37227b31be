/**
 * Sampling keeps exactly the tokens transformers' processors keep (temperature, top-k, top-p) and
 * draws them in proportion to their probabilities. The reference sorts the whole vocabulary (a
 * stable descending sort, as the first implementation did); the sampler selects without sorting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmax, keptTokens, Sampler } from '../../src/infer/sampling.ts';
import { Rng } from '../../src/util/rng.ts';

interface Options {
  temperature: number;
  topK: number;
  topP: number;
}

/** Kept token → probability, by sorting every token (ties: lower id first). */
function reference(
  logits: Float32Array,
  { temperature, topK, topP }: Options,
): Map<number, number> {
  let order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (topK > 0) order = order.slice(0, topK);
  const max = logits[order[0]!]!;
  const weights = order.map((id) => Math.exp((logits[id]! - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let keep = order.length;
  if (topP < 1) {
    let mass = 0;
    keep = 0;
    while (keep < order.length && (keep === 0 || mass < topP)) mass += weights[keep++]! / total;
  }
  const keptTotal = weights.slice(0, keep).reduce((a, b) => a + b, 0);
  return new Map(order.slice(0, keep).map((id, i) => [id, weights[i]! / keptTotal]));
}

function kept(logits: Float32Array, opts: Options): Map<number, number> {
  const copy = logits.slice();
  const ids = Int32Array.from(copy.keys());
  const { count, total } = keptTokens(copy, opts, ids);
  return new Map(Array.from(ids.subarray(0, count), (id) => [id, copy[id]! / total]));
}

/** Logits shaped like a model's: a few strong tokens over a Gaussian crowd, some exact ties. */
function modelLikeLogits(vocab: number, rng: Rng): Float32Array {
  const logits = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) logits[i] = Math.round(3 * rng.normal() * 8) / 8;
  for (let i = 0; i < 12; i++) logits[rng.int(0, vocab - 1)] = 8 + rng.int(0, 5);
  return logits;
}

test('kept tokens and their probabilities match the sorting reference (ties, all options)', () => {
  const rng = new Rng(7);
  const cases: Options[] = [
    { temperature: 0.7, topK: 20, topP: 0.8 },
    { temperature: 0.6, topK: 0, topP: 0.9 },
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 1.3, topK: 50, topP: 1 },
    { temperature: 0.5, topK: 3, topP: 0.999 },
    { temperature: 2, topK: 0, topP: 0.05 },
    { temperature: 1, topK: 5000, topP: 0.5 },
  ];
  for (const vocab of [1, 2, 7, 300, 5000]) {
    for (const opts of cases) {
      const logits = modelLikeLogits(vocab, rng);
      const want = reference(logits, opts);
      const got = kept(logits, opts);
      const where = `vocab ${vocab}, ${JSON.stringify(opts)}`;
      assert.deepEqual(
        [...got.keys()].sort((a, b) => a - b),
        [...want.keys()].sort((a, b) => a - b),
        where,
      );
      for (const [id, p] of want)
        assert.ok(Math.abs(got.get(id)! - p) < 1e-6, `${where}: token ${id}`);
    }
  }
});

test('a nucleus boundary on a tie keeps the lower id, as a stable sort does', () => {
  const logits = new Float32Array([0, 1, 1, 1, 0]);
  // Each 1 has probability 0.268: a quarter takes one token, 0.3 two.
  assert.deepEqual([...kept(logits, { temperature: 1, topK: 0, topP: 0.25 }).keys()], [1]);
  const two = kept(logits, { temperature: 1, topK: 0, topP: 0.3 });
  assert.deepEqual([...two.keys()].sort(), [1, 2]);
  assert.deepEqual([...kept(logits, { temperature: 1, topK: 2, topP: 1 }).keys()].sort(), [1, 2]);
});

test('draws follow the kept probabilities', () => {
  const logits = new Float32Array([2, 0.5, 1.5, -1, 2.2, 0]);
  const opts = { temperature: 0.8, topK: 5, topP: 0.95 };
  const want = reference(logits, opts);
  const sampler = new Sampler({ ...opts, seed: 3 });
  const draws = 40000;
  const counts = new Map<number, number>();
  for (let i = 0; i < draws; i++) {
    const token = sampler.sample(logits.slice(), []);
    counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  for (const token of counts.keys()) assert.ok(want.has(token), `token ${token} was not kept`);
  // Standard error of each frequency is at most 0.0025: 0.012 is ~5 of them.
  for (const [id, p] of want)
    assert.ok(Math.abs((counts.get(id) ?? 0) / draws - p) < 0.012, `token ${id}`);
});

test('a seeded sampler repeats its draws; temperature 0 is the argmax', () => {
  const logits = modelLikeLogits(2000, new Rng(11));
  const run = () => {
    const sampler = new Sampler({ temperature: 0.9, topP: 0.9, seed: 5 });
    return Array.from({ length: 20 }, () => sampler.sample(logits.slice(), []));
  };
  assert.deepEqual(run(), run());
  assert.equal(new Sampler().sample(logits.slice(), []), argmax(logits));
  assert.equal(argmax(new Float32Array([1, 3, 3, 2])), 1);
});
