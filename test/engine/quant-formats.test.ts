// bitsandbytes' formats: code tables against the QLoRA paper and their definitions, and
// quantize → dequantize against an independent float64 reference of bnb's algorithm (argmin over
// the table, rather than the midpoint search of src/engine/quant), with float32 rounding where
// bnb's tensors round.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DYNAMIC_TABLE,
  FP4_TABLE,
  INT8_TABLE,
  NF4_TABLE,
  type QuantType,
} from '../../src/engine/quant/formats.ts';
import { dequantize, quantize } from '../../src/engine/quant/quantize.ts';
import { Rng } from '../../src/util/rng.ts';

const f32 = Math.fround;

// Appendix E of the QLoRA paper (Dettmers et al. 2023), the NF4 data type's 16 values.
const PAPER_NF4 = [
  -1, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1,
];

/** Φ⁻¹ by bisection on Φ (erfc through its continued fraction is overkill: 1e-12 is plenty). */
function normalQuantile(p: number): number {
  const cdf = (x: number) => 0.5 * erfc(-x / Math.SQRT2);
  let [lo, hi] = [-10, 10];
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (cdf(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** erfc by the Taylor series of erf (|x| < 3 here, where it converges to double precision). */
function erfc(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return 1 - (2 / Math.sqrt(Math.PI)) * sum;
}

test('NF4 table: the paper values, and the normal quantiles they come from', () => {
  assert.deepEqual([...NF4_TABLE], PAPER_NF4.map(f32));
  // QLoRA: 8 quantiles for the positive half, 7 for the negative, offset 0.9677083, normalised.
  const linspace = (from: number, to: number, n: number) =>
    Array.from({ length: n }, (_, i) => from + ((to - from) * i) / (n - 1));
  const positive = linspace(0.9677083, 0.5, 9).slice(0, -1).map(normalQuantile);
  const negative = linspace(0.9677083, 0.5, 8)
    .slice(0, -1)
    .map((p) => -normalQuantile(p));
  const values = [...positive, 0, ...negative].sort((a, b) => a - b);
  const max = Math.max(...values.map(Math.abs));
  values.forEach((v, i) => assert.ok(Math.abs(v / max - PAPER_NF4[i]!) < 1e-6, `NF4[${i}]`));
});

test('FP4 table: sign, 2-bit exponent, 1-bit mantissa in bnb code order, over 12', () => {
  const magnitudes = [0, 0.0625, 8, 12, 4, 6, 2, 3];
  const want = [...magnitudes, ...magnitudes.map((m) => -m)].map((m) => f32(m / 12));
  assert.deepEqual([...FP4_TABLE].map(Math.abs), want.map(Math.abs));
  FP4_TABLE.forEach((v, code) => assert.equal(code >= 8, Object.is(v, -0) || v < 0));
});

test('dynamic map: 256 sorted values, ±1 and 0, 2^k values per decade', () => {
  assert.equal(DYNAMIC_TABLE.length, 256);
  for (let i = 1; i < 256; i++) assert.ok(DYNAMIC_TABLE[i - 1]! < DYNAMIC_TABLE[i]!);
  assert.equal(DYNAMIC_TABLE[255], 1);
  // The last mean of linspace(0.1, 1, 65), at both signs.
  assert.ok(Math.abs(DYNAMIC_TABLE[0]! + 0.99296875) < 1e-7);
  assert.equal(DYNAMIC_TABLE[254], -DYNAMIC_TABLE[0]!);
  assert.ok(DYNAMIC_TABLE.includes(0));
  for (let decade = 0; decade < 7; decade++) {
    const [lo, hi] = [0.1 * 10 ** (decade - 6), 10 ** (decade - 6)];
    const inside = [...DYNAMIC_TABLE].filter((v) => v > lo && v < hi).length;
    assert.equal(inside, 2 ** decade, `decade 10^${decade - 6}`);
  }
  assert.equal(INT8_TABLE[255], -1);
});

// ---- the float64 reference ---------------------------------------------------------------------

/** Index of the table value nearest to s (the lower index on a tie: bnb's bucketize). */
function argmin(table: ArrayLike<number>, s: number, candidates: number[]): number {
  let best = candidates[0]!;
  for (const i of candidates) {
    const [d, dBest] = [Math.abs(s - table[i]!), Math.abs(s - table[best]!)];
    if (d < dBest || (d === dBest && table[i]! < table[best]!)) best = i;
  }
  return best;
}

const ALL_16 = Array.from({ length: 16 }, (_, i) => i);

function referenceBlockwise(
  values: number[],
  block: number,
  pick: (s: number) => number,
  table: ArrayLike<number>,
): { values: number[]; absmax: number[]; codes: number[] } {
  const out: number[] = [];
  const absmaxes: number[] = [];
  const codes: number[] = [];
  for (let start = 0; start < values.length; start += block) {
    const chunk = values.slice(start, start + block);
    const absmax = Math.max(...chunk.map(Math.abs));
    absmaxes.push(absmax);
    const inverse = f32(1 / Math.max(absmax, f32(1e-38)));
    for (const x of chunk) {
      const code = pick(Math.min(1, Math.max(-1, f32(x * inverse))));
      codes.push(code);
      out.push(f32(table[code]! * absmax));
    }
  }
  return { values: out, absmax: absmaxes, codes };
}

function reference4bit(values: number[], type: 'nf4' | 'fp4', doubleQuant: boolean): number[] {
  const table = type === 'nf4' ? PAPER_NF4.map(f32) : [...FP4_TABLE];
  const pick =
    type === 'nf4'
      ? (s: number) => argmin(table, s, ALL_16)
      : // CUDA's FP4: the sign bit from s < 0, the nearest magnitude among that sign's codes.
        (s: number) => argmin(table, s, s < 0 ? ALL_16.slice(8) : ALL_16.slice(0, 8));
  const first = referenceBlockwise(values, 64, pick, table);
  if (!doubleQuant) return first.values;
  const offset = f32(first.absmax.reduce((a, b) => a + b, 0) / first.absmax.length);
  const centred = first.absmax.map((a) => f32(a - offset));
  const all256 = Array.from({ length: 256 }, (_, i) => i);
  const nested = referenceBlockwise(
    centred,
    256,
    (s) => argmin(DYNAMIC_TABLE, s, all256),
    DYNAMIC_TABLE,
  );
  const absmax = nested.values.map((v) => f32(v + offset));
  return first.codes.map((code, i) => f32(table[code]! * absmax[Math.floor(i / 64)]!));
}

function referenceInt8(values: number[], rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = values.slice(r * cols, (r + 1) * cols);
    const absmax = Math.max(...row.map(Math.abs));
    for (const x of row) {
      const scaled = absmax === 0 ? 0 : f32(x * f32(127 / absmax));
      let q = Math.round(scaled);
      if (Math.abs(scaled % 1) === 0.5 && q % 2 !== 0) q -= 1; // torch.round: half to even
      out.push(f32(f32(q * absmax) * f32(1 / 127)));
    }
  }
  return out;
}

/** Gaussian weights with a few outliers, an all-zero stretch, and an exact half for int8. */
function testMatrix(rows: number, cols: number, seed: number): number[] {
  const rng = new Rng(seed);
  const values = Array.from({ length: rows * cols }, () => f32(rng.normal(0, 0.02)));
  for (let i = 0; i < values.length; i += 97) values[i] = f32(values[i]! * 40);
  for (let i = 64; i < Math.min(values.length, 128); i++) values[i] = 0;
  return values;
}

const SHAPES: [number, number][] = [
  [5, 27], // 135 values: an odd count, a last partial block of 7
  [3, 200], // rows that straddle blocks
  [64, 64], // whole blocks, 64 absmax values
  [40, 1000], // 625 blocks: three nested blocks of 256, the last partial
];

for (const type of ['nf4', 'fp4', 'int8'] as QuantType[]) {
  for (const doubleQuant of type === 'int8' ? [false] : [false, true]) {
    test(`${type}${doubleQuant ? ' + double quant' : ''}: dequantize(quantize(x)) = the float64 reference`, () => {
      SHAPES.forEach(([rows, cols], s) => {
        const values = testMatrix(rows, cols, 7 + s);
        const q = quantize(values, [rows, cols], type, { doubleQuant });
        const want =
          type === 'int8'
            ? referenceInt8(values, rows, cols)
            : reference4bit(values, type, doubleQuant);
        const got = dequantize(q);
        for (let i = 0; i < want.length; i++) {
          if (!Object.is(got[i], want[i]) && !(got[i] === 0 && want[i] === 0))
            assert.fail(`[${rows}, ${cols}] element ${i}: ${got[i]} vs reference ${want[i]}`);
        }
      });
    });
  }
}

test('4-bit packing: two codes per byte, the first element in the high nibble', () => {
  // Block absmax 1: values on NF4 codes 15 (1.0), 0 (-1.0), 7 (0), then code 8 alone (odd count).
  const q = quantize([1, -1, 0, 0.0795803], [1, 4], 'nf4');
  assert.deepEqual([...q.codes], [0xf0, 0x78]);
  const odd = quantize([1, -1, 0.0795803], [1, 3], 'nf4');
  assert.deepEqual([...odd.codes], [0xf0, 0x80]);
});
