// The registry's JS references (src/engine/kernels/*.ts) against finite differences in float64
// and against each other, and the wasm module's shape. That the backends follow these references
// is registry-kernels.test.ts's job.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';
import { EMPTY_ROW_LSE } from '../../src/engine/kernels/attention.ts';
import { ropeAngle } from '../../src/engine/kernels/rope.ts';
import type { Floats } from '../../src/engine/kernels/spec.ts';
import { defaultInverseFrequencies } from '../../src/models/rope-frequencies.ts';
import { reference } from './kernel-cases.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Deterministic normal-ish samples (sum of uniforms from an LCG), so failures reproduce. */
function makeRandom(seed: number): (n: number, spread?: number) => Float64Array {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  return (n, spread = 1) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = (uniform() + uniform() + uniform() - 1.5) * 2 * spread;
    return out;
  };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Element-wise |actual - expected| <= tol * max(1, max|expected|) (and identical non-finites). */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const bound = tol * Math.max(1, maxAbs(expected));
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(e)) {
      assert.equal(a, e, `${what}[${i}]: expected ${e}, got ${a}`);
      continue;
    }
    assert.ok(Math.abs(a - e) <= bound, `${what}[${i}]: expected ${e}, got ${a} (bound ${bound})`);
  }
}

/**
 * Central finite differences of a scalar loss over every element of `param` (float64, mutated
 * and restored in place).
 */
function numericGrad(param: Float64Array, loss: () => number, h = 1e-6): Float64Array {
  const grad = new Float64Array(param.length);
  for (let i = 0; i < param.length; i++) {
    const saved = param[i];
    param[i] = saved + h;
    const up = loss();
    param[i] = saved - h;
    const down = loss();
    param[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

function weightedSum(a: Floats, weights: Floats): number {
  let s = 0;
  for (let i = 0; i < weights.length; i++) s += a[i] * weights[i];
  return s;
}

// ---------------------------------------------------------------------------------------------
// Shared problem shapes

interface AttentionCase {
  B: number;
  T: number;
  H: number;
  KVH: number;
  D: number;
  keyMask: Int32Array | null;
  segIds: Int32Array | null;
  scale: number;
}

/** B=2, T=7: row 0 packs two documents then one pad token; row 1 is left-padded by two. */
function attentionCase(): AttentionCase {
  const T = 7;
  return {
    B: 2,
    T,
    H: 4,
    KVH: 2,
    D: 6,
    keyMask: Int32Array.from([1, 1, 1, 1, 1, 1, 0, /* row 1 */ 0, 0, 1, 1, 1, 1, 1]),
    segIds: Int32Array.from([1, 1, 1, 2, 2, 2, 0, /* row 1 */ 0, 0, 1, 1, 1, 1, 1]),
    scale: 1 / Math.sqrt(6),
  };
}

// ---------------------------------------------------------------------------------------------
// Reference kernels vs finite differences (float64)

test('reference attention backward matches finite differences (GQA, padding, packing)', () => {
  const c = attentionCase();
  const rand = makeRandom(1);
  const q = rand(c.B * c.T * c.H * c.D);
  const k = rand(c.B * c.T * c.KVH * c.D);
  const v = rand(c.B * c.T * c.KVH * c.D);
  const weights = rand(q.length);
  const out = new Float64Array(q.length);
  const lse = new Float64Array(c.B * c.H * c.T);
  const forward = (): unknown =>
    reference(
      'attentionForward',
      { q, k, v, out, lse, keyMask: c.keyMask, segIds: c.segIds },
      {
        B: c.B,
        Tq: c.T,
        Tk: c.T,
        kvCap: c.T,
        H: c.H,
        KVH: c.KVH,
        D: c.D,
        scale: c.scale,
        window: 0,
      },
    );
  const loss = (): number => (forward(), weightedSum(out, weights));

  forward();
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  reference(
    'attentionBackward',
    { q, k, v, out, lse, dout: weights, dq, dk, dv, keyMask: c.keyMask, segIds: c.segIds },
    { B: c.B, T: c.T, H: c.H, KVH: c.KVH, D: c.D, scale: c.scale, window: 0 },
  );

  assertClose(dq, numericGrad(q, loss), 1e-7, 'dq');
  assertClose(dk, numericGrad(k, loss), 1e-7, 'dk');
  assertClose(dv, numericGrad(v, loss), 1e-7, 'dv');
  // Row 1's first two queries see only padding keys: zero output, zero gradient.
  for (let h = 0; h < c.H; h++) {
    for (const i of [0, 1]) {
      const off = ((1 * c.T + i) * c.H + h) * c.D;
      assert.deepEqual([...out.subarray(off, off + c.D)], new Array(c.D).fill(0));
      assert.equal(lse[(1 * c.H + h) * c.T + i], EMPTY_ROW_LSE);
    }
  }
});

test('reference attention: packed documents do not see each other', () => {
  const c = attentionCase();
  const rand = makeRandom(2);
  const q = rand(c.B * c.T * c.H * c.D);
  const k = rand(c.B * c.T * c.KVH * c.D);
  const v = rand(c.B * c.T * c.KVH * c.D);
  const out = new Float64Array(q.length);
  const lse = new Float64Array(c.B * c.H * c.T);
  reference(
    'attentionForward',
    { q, k, v, out, lse, keyMask: c.keyMask, segIds: c.segIds },
    { B: c.B, Tq: c.T, Tk: c.T, kvCap: c.T, H: c.H, KVH: c.KVH, D: c.D, scale: c.scale, window: 0 },
  );

  // Document 2 of row 0 (tokens 3..5) attended alone, as its own batch row of length 3.
  const slice = (a: Float64Array, heads: number): Float64Array =>
    a.slice(3 * heads * c.D, 6 * heads * c.D);
  const aloneOut = new Float64Array(3 * c.H * c.D);
  reference(
    'attentionForward',
    {
      q: slice(q, c.H),
      k: slice(k, c.KVH),
      v: slice(v, c.KVH),
      out: aloneOut,
      lse: new Float64Array(c.H * 3),
      keyMask: null,
      segIds: null,
    },
    { B: 1, Tq: 3, Tk: 3, kvCap: 3, H: c.H, KVH: c.KVH, D: c.D, scale: c.scale, window: 0 },
  );
  assertClose(slice(out, c.H), aloneOut, 1e-12, 'document 2');
});

test('reference attention decode (Tq < Tk, kvCap > Tk) equals the tail of the full pass', () => {
  const { B, H, KVH, D, scale } = attentionCase();
  const Tk = 6;
  const Tq = 2;
  const kvCap = 9;
  const rand = makeRandom(3);
  const qFull = rand(B * Tk * H * D);
  const k = rand(B * kvCap * KVH * D);
  const v = rand(B * kvCap * KVH * D);
  const keyMask = Int32Array.from([
    1, 1, 1, 1, 1, 1, 0, 0, 0, /* row 1 */ 0, 1, 1, 1, 1, 1, 0, 0, 0,
  ]);
  // The full pass sees the same cache rows repacked with kvCap = Tk.
  const repack = (a: Float64Array | Int32Array, width: number): Float64Array | Int32Array => {
    const out = new (a.constructor as Float64ArrayConstructor)(B * Tk * width);
    for (let b = 0; b < B; b++)
      out.set(a.subarray(b * kvCap * width, (b * kvCap + Tk) * width), b * Tk * width);
    return out;
  };
  const fullOut = new Float64Array(qFull.length);
  reference(
    'attentionForward',
    {
      q: qFull,
      k: repack(k, KVH * D) as Float64Array,
      v: repack(v, KVH * D) as Float64Array,
      out: fullOut,
      lse: new Float64Array(B * H * Tk),
      keyMask: repack(keyMask, 1) as Int32Array,
      segIds: null,
    },
    { B, Tq: Tk, Tk, kvCap: Tk, H, KVH, D, scale, window: 0 },
  );

  const tailRows = (a: Float64Array): Float64Array => {
    const out = new Float64Array(B * Tq * H * D);
    for (let b = 0; b < B; b++)
      out.set(a.subarray((b * Tk + Tk - Tq) * H * D, (b + 1) * Tk * H * D), b * Tq * H * D);
    return out;
  };
  const decodeOut = new Float64Array(B * Tq * H * D);
  reference(
    'attentionForward',
    {
      q: tailRows(qFull),
      k,
      v,
      out: decodeOut,
      lse: new Float64Array(B * H * Tq),
      keyMask,
      segIds: null,
    },
    { B, Tq, Tk, kvCap, H, KVH, D, scale, window: 0 },
  );
  assertClose(decodeOut, tailRows(fullOut), 1e-12, 'decode output');
});

test('reference rmsnorm backward matches finite differences and accumulates dw', () => {
  const rows = 5;
  const dim = 13;
  const eps = 1e-6;
  const rand = makeRandom(4);
  const x = rand(rows * dim);
  const w = rand(dim);
  const weights = rand(rows * dim);
  const out = new Float64Array(rows * dim);
  const rstd = new Float64Array(rows);
  const loss = (): number => (
    reference('rmsnormForward', { x, w, out, rstd }, { rows, dim, eps }),
    weightedSum(out, weights)
  );

  loss();
  const dx = new Float64Array(rows * dim);
  const dwStart = rand(dim);
  const dw = dwStart.slice();
  reference('rmsnormBackward', { x, w, rstd, dout: weights, dx, dw }, { rows, dim });
  assertClose(dx, numericGrad(x, loss), 1e-7, 'dx');
  assertClose(
    dw.map((g, i) => g - dwStart[i]),
    numericGrad(w, loss),
    1e-7,
    'dw',
  );
});

test('reference rope: inverse undoes it, and is its backward', () => {
  const [B, T, heads, D] = [2, 3, 3, 8];
  const theta = defaultInverseFrequencies(D, 10000);
  const positions = Int32Array.from([0, 1, 2, 7, 300, 40000]);
  const rand = makeRandom(5);
  const x = rand(B * T * heads * D);
  const weights = rand(x.length);
  const rotated = new Float64Array(x.length);
  const loss = (): number => (
    reference(
      'ropeApply',
      { x, out: rotated, positions, invFreq: theta },
      { B, T, H: heads, D, inverse: false, rotaryDim: D, scale: 1 },
    ),
    weightedSum(rotated, weights)
  );

  loss();
  const back = rotated.slice();
  reference(
    'ropeApply',
    { x: back, out: back, positions, invFreq: theta },
    { B, T, H: heads, D, inverse: true, rotaryDim: D, scale: 1 },
  );
  assertClose(back, x, 1e-6, 'inverse(rope(x))'); // f32 cos/sin: rotation is orthogonal to ~1e-7
  const grad = new Float64Array(x.length);
  reference(
    'ropeApply',
    { x: weights, out: grad, positions, invFreq: theta },
    { B, T, H: heads, D, inverse: true, rotaryDim: D, scale: 1 },
  );
  assertClose(grad, numericGrad(x, loss), 1e-7, 'dx');
  // Position 0 is the identity.
  assertClose(rotated.subarray(0, heads * D), x.subarray(0, heads * D), 0, 'position 0');
});

test('reference rope angles follow the float32 computation of Hugging Face', () => {
  // inv_freq[1] for D=64, theta=1e6 is f32(1 / f32(1e6 ** f32(2/64))) = 0.6493816375732422; at
  // position 1000 the f32 product is 649.3816528320312, not the f64 649.3816315762114.
  const invFreq = defaultInverseFrequencies(64, 1e6)[1]!;
  assert.equal(invFreq, 0.6493816375732422);
  const { cos, sin } = ropeAngle(1000, invFreq);
  const angle = Math.fround(
    1000 * Math.fround(1 / Math.fround(Math.pow(1e6, Math.fround(2 / 64)))),
  );
  assert.equal(angle, 649.3816528320312);
  assert.equal(cos, Math.fround(Math.cos(angle)));
  assert.equal(sin, Math.fround(Math.sin(angle)));
  assert.notEqual(angle, 1000 * (1 / Math.pow(1e6, 2 / 64)));
});

test('reference swiglu backward matches finite differences', () => {
  const n = 11;
  const rand = makeRandom(6);
  const gate = rand(n, 4);
  const up = rand(n);
  const weights = rand(n);
  const out = new Float64Array(n);
  const loss = (): number => (
    reference('gatedForward', { gate, up, out }, { n, activation: 'silu' }),
    weightedSum(out, weights)
  );
  const dgate = new Float64Array(n);
  const dup = new Float64Array(n);
  reference('gatedBackward', { gate, up, dout: weights, dgate, dup }, { n, activation: 'silu' });
  assertClose(dgate, numericGrad(gate, loss), 1e-7, 'dgate');
  assertClose(dup, numericGrad(up, loss), 1e-7, 'dup');
});

/** rows=5 over a vocab of 23 in chunks of 10, 10, 3; row 3 is unsupervised (-100). */
const CE = {
  rows: 5,
  vocab: 23,
  chunks: [10, 10, 3],
  targets: Int32Array.from([0, 22, 10, -100, 15]),
};

/** Runs ceOnlineChunk over the chunks of a [rows, vocab] logits matrix; returns lse and tgtLogit. */
function referenceCrossEntropy(logits: Float64Array): {
  lse: Float64Array;
  tgtLogit: Float64Array;
} {
  const { rows, vocab, chunks, targets } = CE;
  const runMax = new Float64Array(rows).fill(-Infinity);
  const runSum = new Float64Array(rows);
  const tgtLogit = new Float64Array(rows);
  let colOffset = 0;
  for (const cols of chunks) {
    const chunk = new Float64Array(rows * cols);
    for (let r = 0; r < rows; r++)
      chunk.set(logits.subarray(r * vocab + colOffset, r * vocab + colOffset + cols), r * cols);
    reference(
      'ceOnlineChunk',
      { logits: chunk, targets, runMax, runSum, tgtLogit, acc: null },
      { rows, cols, colOffset, accCols: 0 },
    );
    colOffset += cols;
  }
  return { lse: runMax.map((m, r) => m + Math.log(runSum[r])), tgtLogit };
}

test('reference chunked cross-entropy: lse, target logits and backward', () => {
  const { rows, vocab, targets } = CE;
  const rand = makeRandom(7);
  const logits = rand(rows * vocab, 5);
  const rowScale = Float64Array.from([0.25, 0.25, 0.25, 0, 0.25]);
  const { lse, tgtLogit } = referenceCrossEntropy(logits);
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    const direct = Math.log(row.reduce((s, z) => s + Math.exp(z), 0));
    assert.ok(Math.abs(lse[r] - direct) < 1e-12, `lse row ${r}`);
    if (targets[r] >= 0) assert.equal(tgtLogit[r], row[targets[r]]);
  }

  const loss = (): number => {
    const ce = referenceCrossEntropy(logits);
    let total = 0;
    for (let r = 0; r < rows; r++)
      if (rowScale[r] !== 0) total += rowScale[r] * (ce.lse[r] - ce.tgtLogit[r]);
    return total;
  };
  const grad = logits.slice();
  reference(
    'ceChunkBackward',
    { logits: grad, targets, lse, rowScale },
    { rows, cols: vocab, colOffset: 0 },
  );
  assertClose(grad, numericGrad(logits, loss), 1e-7, 'dlogits');
});

// ---------------------------------------------------------------------------------------------
// The wasm kernels' module (their values are checked against these references by
// registry-kernels.test.ts)

/** The kernel files (entries, one per family; their helpers in assembly/lib/ come by import). */
const ASSEMBLY_DIR = fileURLToPath(new URL('../../src/engine/cpu/assembly/', import.meta.url));
const KERNEL_SOURCES = readdirSync(ASSEMBLY_DIR)
  .filter((name) => name.endsWith('.ts') && name !== 'gemm.ts')
  .map((name) => join(ASSEMBLY_DIR, name));

/** Compiles the kernels alone (the same flags as the module build), so these tests never see a stale build. */
async function compileKernels(relaxed: boolean): Promise<Uint8Array<ArrayBuffer>> {
  let binary: Uint8Array<ArrayBuffer> | undefined;
  const features = relaxed ? 'simd,threads,relaxed-simd' : 'simd,threads';
  const { error, stderr } = await asc.main(
    [
      ...KERNEL_SOURCES,
      '--enable',
      features,
      '--importMemory',
      '--sharedMemory',
      '--initialMemory',
      '256',
      '--maximumMemory',
      '65536',
      '--runtime',
      'stub',
      '-O3',
      '--outFile',
      'kernels.wasm',
    ],
    {
      writeFile: (name, contents) => {
        if (name.endsWith('.wasm')) binary = new Uint8Array(contents as Uint8Array);
      },
    },
  );
  assert.equal(error, null, String(stderr));
  return binary!;
}

/** Ids of the top-level sections of a wasm binary. */
function sectionIds(binary: Uint8Array): number[] {
  const ids: number[] = [];
  let at = 8; // magic + version
  while (at < binary.length) {
    ids.push(binary[at++]);
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = binary[at++];
      size |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    at += size;
  }
  return ids;
}

for (const relaxed of [false, true]) {
  const variant = relaxed ? 'relaxed-SIMD' : 'SIMD128';
  test(`${variant} kernels compile to a module with no data segments, no start function, no globals`, async () => {
    const ids = sectionIds(await compileKernels(relaxed));
    for (const [id, name] of [
      [11, 'data'],
      [8, 'start'],
      [6, 'global'],
    ] as const) {
      assert.ok(!ids.includes(id), `${name} section present`);
    }
  });
}
