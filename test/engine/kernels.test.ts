import '../../src/engine/cpu/node-host.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';
import * as ref from '../../src/engine/cpu/reference-kernels.ts';
import type { Floats } from '../../src/engine/cpu/reference-kernels.ts';
import { CpuKernels } from '../../src/engine/cpu/kernels.ts';
import { WasmRuntime } from '../../src/engine/cpu/runtime.ts';
import { prepareWasmCompiler, supportsRelaxedSimd } from '../../src/engine/cpu/v8-flags.ts';
import {
  defaultInverseFrequencies,
  ropeInverseFrequencies,
} from '../../src/models/rope-frequencies.ts';

/** Llama 3.2's rope_scaling, which scales some frequencies, blends some and keeps the rest. */
const LLAMA3_SCALING = {
  type: 'llama3',
  factor: 32,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
} as const;

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
  const forward = (): void =>
    ref.attentionForward(
      q,
      k,
      v,
      out,
      lse,
      c.B,
      c.T,
      c.T,
      c.T,
      c.H,
      c.KVH,
      c.D,
      c.keyMask,
      c.segIds,
      c.scale,
    );
  const loss = (): number => (forward(), weightedSum(out, weights));

  forward();
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  ref.attentionBackward(
    q,
    k,
    v,
    out,
    lse,
    weights,
    dq,
    dk,
    dv,
    c.B,
    c.T,
    c.H,
    c.KVH,
    c.D,
    c.keyMask,
    c.segIds,
    c.scale,
  );

  assertClose(dq, numericGrad(q, loss), 1e-7, 'dq');
  assertClose(dk, numericGrad(k, loss), 1e-7, 'dk');
  assertClose(dv, numericGrad(v, loss), 1e-7, 'dv');
  // Row 1's first two queries see only padding keys: zero output, zero gradient.
  for (let h = 0; h < c.H; h++) {
    for (const i of [0, 1]) {
      const off = ((1 * c.T + i) * c.H + h) * c.D;
      assert.deepEqual([...out.subarray(off, off + c.D)], new Array(c.D).fill(0));
      assert.equal(lse[(1 * c.H + h) * c.T + i], ref.EMPTY_ROW_LSE);
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
  ref.attentionForward(
    q,
    k,
    v,
    out,
    lse,
    c.B,
    c.T,
    c.T,
    c.T,
    c.H,
    c.KVH,
    c.D,
    c.keyMask,
    c.segIds,
    c.scale,
  );

  // Document 2 of row 0 (tokens 3..5) attended alone, as its own batch row of length 3.
  const slice = (a: Float64Array, heads: number): Float64Array =>
    a.slice(3 * heads * c.D, 6 * heads * c.D);
  const aloneOut = new Float64Array(3 * c.H * c.D);
  ref.attentionForward(
    slice(q, c.H),
    slice(k, c.KVH),
    slice(v, c.KVH),
    aloneOut,
    new Float64Array(c.H * 3),
    1,
    3,
    3,
    3,
    c.H,
    c.KVH,
    c.D,
    null,
    null,
    c.scale,
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
  ref.attentionForward(
    qFull,
    repack(k, KVH * D) as Float64Array,
    repack(v, KVH * D) as Float64Array,
    fullOut,
    new Float64Array(B * H * Tk),
    B,
    Tk,
    Tk,
    Tk,
    H,
    KVH,
    D,
    repack(keyMask, 1) as Int32Array,
    null,
    scale,
  );

  const tailRows = (a: Float64Array): Float64Array => {
    const out = new Float64Array(B * Tq * H * D);
    for (let b = 0; b < B; b++)
      out.set(a.subarray((b * Tk + Tk - Tq) * H * D, (b + 1) * Tk * H * D), b * Tq * H * D);
    return out;
  };
  const decodeOut = new Float64Array(B * Tq * H * D);
  ref.attentionForward(
    tailRows(qFull),
    k,
    v,
    decodeOut,
    new Float64Array(B * H * Tq),
    B,
    Tq,
    Tk,
    kvCap,
    H,
    KVH,
    D,
    keyMask,
    null,
    scale,
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
    ref.rmsnormForward(x, w, out, rstd, rows, dim, eps),
    weightedSum(out, weights)
  );

  loss();
  const dx = new Float64Array(rows * dim);
  const dwStart = rand(dim);
  const dw = dwStart.slice();
  ref.rmsnormBackward(x, w, rstd, weights, dx, dw, rows, dim);
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
    ref.ropeApply(x, rotated, positions, B, T, heads, D, theta, 0),
    weightedSum(rotated, weights)
  );

  loss();
  const back = rotated.slice();
  ref.ropeApply(back, back, positions, B, T, heads, D, theta, 1);
  assertClose(back, x, 1e-6, 'inverse(rope(x))'); // f32 cos/sin: rotation is orthogonal to ~1e-7
  const grad = new Float64Array(x.length);
  ref.ropeApply(weights, grad, positions, B, T, heads, D, theta, 1);
  assertClose(grad, numericGrad(x, loss), 1e-7, 'dx');
  // Position 0 is the identity.
  assertClose(rotated.subarray(0, heads * D), x.subarray(0, heads * D), 0, 'position 0');
});

test('reference rope angles follow the float32 computation of Hugging Face', () => {
  // inv_freq[1] for D=64, theta=1e6 is f32(1 / f32(1e6 ** f32(2/64))) = 0.6493816375732422; at
  // position 1000 the f32 product is 649.3816528320312, not the f64 649.3816315762114.
  const invFreq = defaultInverseFrequencies(64, 1e6)[1]!;
  assert.equal(invFreq, 0.6493816375732422);
  const { cos, sin } = ref.ropeAngle(1000, invFreq);
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
  const loss = (): number => (ref.swigluForward(gate, up, out, n), weightedSum(out, weights));
  const dgate = new Float64Array(n);
  const dup = new Float64Array(n);
  ref.swigluBackward(gate, up, weights, dgate, dup, n);
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

/** Runs ceChunkForward over the chunks of a [rows, vocab] logits matrix; returns lse and tgtLogit. */
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
    ref.ceChunkForward(chunk, rows, cols, colOffset, targets, runMax, runSum, tgtLogit);
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
  ref.ceChunkBackward(grad, rows, vocab, 0, targets, lse, rowScale);
  assertClose(grad, numericGrad(logits, loss), 1e-7, 'dlogits');
});

test('reference adamw: first step moves each weight by about lr against the gradient sign', () => {
  const p = Float64Array.from([1, -2, 0.5]);
  const g = Float64Array.from([0.3, -4, 1e-3]);
  const m = new Float64Array(3);
  const v = new Float64Array(3);
  const [lr, b1, b2] = [0.01, 0.9, 0.999];
  ref.adamwStep(p, g, m, v, 3, lr, b1, b2, 1e-12, 0, 1 - b1, 1 - b2);
  assertClose(p, [1 - lr, -2 + lr, 0.5 - lr], 1e-8, 'p');
  // Decoupled weight decay shrinks p by lr * wd before the Adam update (here g = 0).
  const q = Float64Array.from([2]);
  ref.adamwStep(
    q,
    new Float64Array(1),
    new Float64Array(1),
    new Float64Array(1),
    1,
    0.1,
    b1,
    b2,
    1e-8,
    0.5,
    1 - b1,
    1 - b2,
  );
  assertClose(q, [2 * (1 - 0.05)], 1e-12, 'decayed p');
});

test('reference bf16 conversion rounds to nearest even and keeps NaN', () => {
  const src = Float32Array.from([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, Infinity, NaN, 3.4e38]);
  const bits = new Uint16Array(src.length);
  ref.f32ToBf16(src, bits, src.length);
  assert.deepEqual([...bits.subarray(0, 5)], [0x3f80, 0x3f80, 0x3f82, 0xc020, 0x7f80]);
  const back = new Float32Array(src.length);
  ref.bf16ToF32(bits, back, src.length);
  assert.ok(Number.isNaN(back[5]));
  assert.equal(back[6], Infinity); // 3.4e38 rounds past the largest bf16
});

// ---------------------------------------------------------------------------------------------
// Wasm kernels vs the reference (float32)

const KERNELS_SOURCE = fileURLToPath(
  new URL('../../src/engine/cpu/assembly/kernels.ts', import.meta.url),
);

/** Compiles the kernels alone (the same flags as the module build), so these tests never see a stale build. */
async function compileKernels(relaxed: boolean): Promise<Uint8Array<ArrayBuffer>> {
  let binary: Uint8Array<ArrayBuffer> | undefined;
  const features = relaxed ? 'simd,threads,relaxed-simd' : 'simd,threads';
  const { error, stderr } = await asc.main(
    [
      KERNELS_SOURCE,
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

/** A shared memory with a bump allocator and views, like the runtime's (64-byte aligned, never 0). */
class TestMemory {
  readonly memory = new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
  private next = 64;

  private reserve(bytes: number): number {
    const ptr = this.next;
    this.next = Math.ceil((ptr + bytes) / 64) * 64;
    const needed = Math.ceil(this.next / 65536) - this.memory.buffer.byteLength / 65536;
    if (needed > 0) this.memory.grow(needed);
    return ptr;
  }

  /** Copies values in as f32 (or allocates n zeros); returns the pointer. */
  f32(values: ArrayLike<number> | number): number {
    const n = typeof values === 'number' ? values : values.length;
    const ptr = this.reserve(n * 4);
    if (typeof values !== 'number') this.viewF32(ptr, n).set(values);
    return ptr;
  }

  i32(values: ArrayLike<number>): number {
    const ptr = this.reserve(values.length * 4);
    new Int32Array(this.memory.buffer, ptr, values.length).set(values);
    return ptr;
  }

  u16(n: number): number {
    return this.reserve(n * 2);
  }

  viewF32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }

  readF32(ptr: number, n: number): Float32Array {
    return this.viewF32(ptr, n).slice();
  }

  readU16(ptr: number, n: number): Uint16Array {
    return new Uint16Array(this.memory.buffer, ptr, n).slice();
  }
}

interface Harness {
  mem: TestMemory;
  kernels: CpuKernels;
  /** Work ranges the kernels were split into, per export. */
  splits: Map<string, Array<[number, number]>>;
}

/**
 * Instantiates the kernels over a fresh memory. parallelFor runs every call as three uneven
 * slices on this thread, so each kernel's [start, end) handling is exercised; `threads` is what
 * the host claims to have (it steers the attention backward's work split).
 */
async function harness(binary: Uint8Array<ArrayBuffer>, threads = 1): Promise<Harness> {
  const mem = new TestMemory();
  // The same V8 settings as the runtime (relaxed SIMD is behind a flag on Node 20).
  prepareWasmCompiler();
  assert.ok(
    WebAssembly.validate(binary) || supportsRelaxedSimd(binary),
    'module does not validate',
  );
  const instance = await WebAssembly.instantiate(await WebAssembly.compile(binary), {
    env: { memory: mem.memory, abort: () => assert.fail('wasm abort') },
  });
  const splits = new Map<string, Array<[number, number]>>();
  const exports = instance.exports;
  const parallelFor = (name: string, total: number, args: number[]): void => {
    const cuts = [0, Math.floor(total / 3), Math.floor((2 * total) / 3) + 1, total].map((c) =>
      Math.min(c, total),
    );
    const ranges: Array<[number, number]> = [];
    for (let s = 0; s < 3; s++) if (cuts[s] < cuts[s + 1]) ranges.push([cuts[s], cuts[s + 1]]);
    splits.set(name, ranges);
    for (const [start, end] of ranges)
      (exports[name] as (...a: number[]) => void)(...args, start, end);
  };
  return {
    mem,
    kernels: new CpuKernels({ exports, parallelFor, threads }, { minParallelFlops: 0 }),
    splits,
  };
}

const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);

for (const relaxed of [false, true]) {
  const variant = relaxed ? 'relaxed-SIMD' : 'SIMD128';
  const binaryPromise = compileKernels(relaxed);

  test(`${variant} module: no data segments, no start function, no globals`, async () => {
    const ids = sectionIds(await binaryPromise);
    for (const [id, name] of [
      [11, 'data'],
      [8, 'start'],
      [6, 'global'],
    ] as const) {
      assert.ok(!ids.includes(id), `${name} section present`);
    }
  });

  // 1 thread: one job per (batch, kv head); 64 threads: the split dq / dk-dv backward.
  for (const threads of [1, 64]) {
    test(`${variant} attentionForward and attentionBackward match the reference (${threads} threads)`, async () => {
      const { mem, kernels, splits } = await harness(await binaryPromise, threads);
      const shapes = [
        { ...attentionCase(), window: 0, name: 'masked+packed D=6' },
        {
          B: 1,
          T: 19,
          H: 4,
          KVH: 1,
          D: 64,
          keyMask: null,
          segIds: null,
          scale: 0.125,
          window: 0,
          name: 'plain D=64',
        },
        { ...attentionCase(), D: 8, T: 7, keyMask: null, window: 0, name: 'packed only D=8' },
        // Sliding windows shorter than the sequence (Gemma 3, Mistral): keys before p - window + 1 unseen.
        { ...attentionCase(), window: 3, name: 'masked+packed D=6 window 3' },
        {
          B: 2,
          T: 19,
          H: 4,
          KVH: 2,
          D: 16,
          keyMask: null,
          segIds: null,
          scale: 0.25,
          window: 5,
          name: 'window 5 D=16',
        },
      ];
      for (const c of shapes) {
        const rand = makeRandom(11);
        const q = f32(rand(c.B * c.T * c.H * c.D));
        const k = f32(rand(c.B * c.T * c.KVH * c.D));
        const v = f32(rand(c.B * c.T * c.KVH * c.D));
        const dout = f32(rand(q.length));
        const out = new Float32Array(q.length);
        const lse = new Float32Array(c.B * c.H * c.T);
        ref.attentionForward(
          q,
          k,
          v,
          out,
          lse,
          c.B,
          c.T,
          c.T,
          c.T,
          c.H,
          c.KVH,
          c.D,
          c.keyMask,
          c.segIds,
          c.scale,
          c.window,
        );
        const dq = new Float32Array(q.length);
        const dk = new Float32Array(k.length);
        const dv = new Float32Array(v.length);
        ref.attentionBackward(
          q,
          k,
          v,
          out,
          lse,
          dout,
          dq,
          dk,
          dv,
          c.B,
          c.T,
          c.H,
          c.KVH,
          c.D,
          c.keyMask,
          c.segIds,
          c.scale,
          c.window,
        );

        const [qP, kP, vP, doP] = [q, k, v, dout].map((a) => mem.f32(a));
        const outP = mem.f32(q.length);
        const lseP = mem.f32(lse.length);
        const maskP = c.keyMask ? mem.i32(c.keyMask) : 0;
        const segP = c.segIds ? mem.i32(c.segIds) : 0;
        kernels.attentionForward(
          qP,
          kP,
          vP,
          outP,
          lseP,
          c.B,
          c.T,
          c.T,
          c.T,
          c.H,
          c.KVH,
          c.D,
          maskP,
          segP,
          c.scale,
          c.window,
        );
        assertClose(mem.readF32(outP, out.length), out, 1e-5, `${c.name} out`);
        assertClose(mem.readF32(lseP, lse.length), lse, 1e-5, `${c.name} lse`);

        // Garbage in the outputs: the backward must overwrite, not accumulate.
        const [dqP, dkP, dvP] = [dq, dk, dv].map((a) => mem.f32(rand(a.length)));
        kernels.attentionBackward(
          qP,
          kP,
          vP,
          outP,
          lseP,
          doP,
          dqP,
          dkP,
          dvP,
          c.B,
          c.T,
          c.H,
          c.KVH,
          c.D,
          maskP,
          segP,
          c.scale,
          c.window,
        );
        assertClose(mem.readF32(dqP, dq.length), dq, 1e-5, `${c.name} dq`);
        assertClose(mem.readF32(dkP, dk.length), dk, 1e-5, `${c.name} dk`);
        assertClose(mem.readF32(dvP, dv.length), dv, 1e-5, `${c.name} dv`);
      }
      const backwardKernel = threads === 1 ? 'attentionBackward' : 'attentionBackwardKeyValue';
      assert.ok(splits.get(backwardKernel)!.length > 1);
    });
  }

  test(`${variant} attentionForward decodes against a KV cache (Tq < Tk < kvCap, NaN past Tk)`, async () => {
    const { mem, kernels } = await harness(await binaryPromise);
    const [B, Tq, Tk, kvCap, H, KVH, D] = [2, 3, 10, 13, 4, 2, 12];
    const rand = makeRandom(12);
    const q = f32(rand(B * Tq * H * D));
    const k = f32(rand(B * kvCap * KVH * D));
    const v = f32(rand(B * kvCap * KVH * D));
    for (let b = 0; b < B; b++) {
      k.fill(NaN, (b * kvCap + Tk) * KVH * D, (b + 1) * kvCap * KVH * D);
      v.fill(NaN, (b * kvCap + Tk) * KVH * D, (b + 1) * kvCap * KVH * D);
    }
    const keyMask = new Int32Array(B * kvCap).fill(1);
    keyMask.fill(0, kvCap, kvCap + 4); // row 1 left-padded by 4
    const out = new Float32Array(q.length);
    const lse = new Float32Array(B * H * Tq);
    ref.attentionForward(q, k, v, out, lse, B, Tq, Tk, kvCap, H, KVH, D, keyMask, null, 0.3);
    const outP = mem.f32(q.length);
    const lseP = mem.f32(lse.length);
    kernels.attentionForward(
      mem.f32(q),
      mem.f32(k),
      mem.f32(v),
      outP,
      lseP,
      B,
      Tq,
      Tk,
      kvCap,
      H,
      KVH,
      D,
      mem.i32(keyMask),
      0,
      0.3,
    );
    assertClose(mem.readF32(outP, out.length), out, 1e-5, 'decode out');
    assertClose(mem.readF32(lseP, lse.length), lse, 1e-5, 'decode lse');
  });

  test(`${variant} rmsnorm forward and backward match the reference`, async () => {
    const { mem, kernels, splits } = await harness(await binaryPromise);
    for (const [rows, dim] of [
      [5, 13],
      [3, 64],
    ]) {
      const rand = makeRandom(13);
      const x = f32(rand(rows * dim));
      const w = f32(rand(dim));
      const dout = f32(rand(rows * dim));
      const dwStart = f32(rand(dim));
      const out = new Float32Array(rows * dim);
      const rstd = new Float32Array(rows);
      ref.rmsnormForward(x, w, out, rstd, rows, dim, 1e-6);
      const dx = new Float32Array(rows * dim);
      const dw = dwStart.slice();
      ref.rmsnormBackward(x, w, rstd, dout, dx, dw, rows, dim);

      const [xP, wP, doP] = [x, w, dout].map((a) => mem.f32(a));
      const outP = mem.f32(out.length);
      const rstdP = mem.f32(rows);
      kernels.rmsnormForward(xP, wP, outP, rstdP, rows, dim, 1e-6);
      assertClose(mem.readF32(outP, out.length), out, 1e-5, 'out');
      assertClose(mem.readF32(rstdP, rows), rstd, 1e-5, 'rstd');
      const dxP = mem.f32(dx.length);
      const dwP = mem.f32(dwStart);
      kernels.rmsnormBackward(xP, wP, rstdP, doP, dxP, dwP, rows, dim);
      assertClose(mem.readF32(dxP, dx.length), dx, 1e-5, 'dx');
      assertClose(mem.readF32(dwP, dim), dw, 1e-5, 'dw');
      kernels.rmsnormBackward(xP, wP, rstdP, doP, dxP, 0, rows, dim); // dw = 0: input gradient only
      assertClose(mem.readF32(dxP, dx.length), dx, 1e-5, 'dx without dw');
    }
    assert.ok(splits.get('rmsnormBackwardWeight')!.length > 1);
  });

  test(`${variant} ropeApply reproduces the float32 cos / sin bit for bit`, async () => {
    const { mem, kernels } = await harness(await binaryPromise);
    const positions = Int32Array.from({ length: 256 }, (_, i) => (i < 128 ? i : i * 977 + 13));
    for (const [D, theta] of [
      [64, 1e6],
      [128, 1e4],
      [6, 500000],
      [64, 500000],
    ]) {
      const half = D / 2;
      // x = (1, 0) in every pair: the rotated pair is exactly (cos, sin).
      const x = new Float32Array(positions.length * D);
      for (let r = 0; r < positions.length; r++) x.fill(1, r * D, r * D + half);
      const xP = mem.f32(x);
      const posP = mem.i32(positions);
      const tables = {
        default: defaultInverseFrequencies(D, theta),
        linear: ropeInverseFrequencies(D, theta, { type: 'linear', factor: 4 }),
        llama3: ropeInverseFrequencies(D, theta, LLAMA3_SCALING),
      };
      for (const [name, table] of Object.entries(tables)) {
        const outP = mem.f32(x.length);
        kernels.ropeApply(xP, outP, posP, 1, positions.length, 1, D, mem.f32(table), 0);
        const out = mem.readF32(outP, x.length);
        for (let r = 0; r < positions.length; r++) {
          for (let j = 0; j < half; j++) {
            const { cos, sin } = ref.ropeAngle(positions[r], table[j]!);
            const where = `${name}: pos ${positions[r]} j ${j} D ${D}`;
            assert.equal(out[r * D + j], cos, `cos ${where}`);
            assert.equal(out[r * D + half + j], sin, `sin ${where}`);
          }
        }
      }
    }
  });

  test(`${variant} ropeApply matches the reference, in place and inverse`, async () => {
    const { mem, kernels } = await harness(await binaryPromise);
    for (const D of [64, 6, 10]) {
      const [B, T, heads] = [2, 5, 3];
      const positions = Int32Array.from({ length: B * T }, (_, i) => i * 37);
      const x = f32(makeRandom(14)(B * T * heads * D));
      const table = ropeInverseFrequencies(D, 10000, LLAMA3_SCALING);
      for (const inverse of [0, 1]) {
        const expected = new Float32Array(x.length);
        ref.ropeApply(x, expected, positions, B, T, heads, D, table, inverse);
        const xP = mem.f32(x);
        kernels.ropeApply(xP, xP, mem.i32(positions), B, T, heads, D, mem.f32(table), inverse);
        assertClose(mem.readF32(xP, x.length), expected, 1e-6, `D=${D} inverse=${inverse}`);
      }
    }
  });

  test(`${variant} ropeApply turns only the first rotaryDim values, cos/sin scaled (Phi-3)`, async () => {
    const { mem, kernels } = await harness(await binaryPromise);
    // rotaryDim 12 of 16: one 4-wide group and 2 single pairs; 4 values pass through.
    for (const [D, rotaryDim] of [
      [16, 12],
      [128, 96],
    ]) {
      const [B, T, heads] = [2, 3, 3];
      const positions = Int32Array.from({ length: B * T }, (_, i) => i * 11);
      const x = f32(makeRandom(15)(B * T * heads * D));
      const table = ropeInverseFrequencies(rotaryDim, 10000, null);
      for (const inverse of [0, 1]) {
        const expected = new Float32Array(x.length);
        ref.ropeApply(x, expected, positions, B, T, heads, D, table, inverse, rotaryDim, 1.25);
        const xP = mem.f32(x);
        const outP = mem.f32(x.length);
        const [posP, tableP] = [mem.i32(positions), mem.f32(table)];
        kernels.ropeApply(xP, outP, posP, B, T, heads, D, tableP, inverse, rotaryDim, 1.25);
        const out = mem.readF32(outP, x.length);
        assertClose(out, expected, 1e-6, `D=${D} inverse=${inverse}`);
        for (let i = 0; i < x.length; i++) {
          if (i % D >= rotaryDim) assert.equal(out[i], x[i], `pass-through value ${i}`);
        }
      }
    }
  });

  test(`${variant} dropout draws the reference mask from its seed, split over threads`, async () => {
    const { mem, kernels, splits } = await harness(await binaryPromise);
    for (const [n, p, seed] of [
      [11, 0.1, 1],
      [1001, 0.5, 0xdeadbeef],
      [100_003, 0.05, 7],
    ] as const) {
      const x = f32(makeRandom(16)(n));
      const expected = new Float32Array(n);
      ref.dropout(x, expected, n, p, seed);
      const xP = mem.f32(x);
      const outP = mem.f32(n);
      kernels.dropout(xP, outP, n, p, seed);
      assert.deepEqual(mem.readF32(outP, n), expected, `n ${n} p ${p}`);
      const droppedShare = expected.filter((v) => v === 0).length / n;
      if (n > 100_000) assert.ok(Math.abs(droppedShare - p) < 0.005, `dropped ${droppedShare}`);
      kernels.dropout(xP, xP, n, p, seed + 1); // in place, another seed: another mask
      assert.notDeepEqual(mem.readF32(xP, n), expected);
    }
    assert.ok(splits.get('dropoutApply')!.length > 1);
  });

  test(`${variant} swiglu, adamw and element-wise kernels match the reference`, async () => {
    const { mem, kernels } = await harness(await binaryPromise);
    for (const n of [11, 1001]) {
      const rand = makeRandom(15);
      const gate = f32(rand(n, 6));
      gate.set([100, -100, 0, -88, 89].slice(0, n));
      const up = f32(rand(n));
      const dout = f32(rand(n));
      const [gP, uP, doP] = [gate, up, dout].map((a) => mem.f32(a));

      const out = new Float32Array(n);
      ref.swigluForward(gate, up, out, n);
      const outP = mem.f32(n);
      kernels.swigluForward(gP, uP, outP, n);
      assertClose(mem.readF32(outP, n), out, 1e-5, 'swiglu out');

      const dgate = new Float32Array(n);
      const dup = new Float32Array(n);
      ref.swigluBackward(gate, up, dout, dgate, dup, n);
      kernels.swigluBackward(gP, uP, doP, gP, uP, n); // in place over gate / up
      assertClose(mem.readF32(gP, n), dgate, 1e-5, 'dgate');
      assertClose(mem.readF32(uP, n), dup, 1e-5, 'dup');

      const p = f32(rand(n));
      const m = new Float32Array(n);
      const v = new Float32Array(n);
      const [pP, mP, vP, gradP] = [p, m, v, dout].map((a) => mem.f32(a));
      for (let t = 1; t <= 3; t++) {
        const [bc1, bc2] = [1 - 0.9 ** t, 1 - 0.95 ** t];
        ref.adamwStep(p, dout, m, v, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, bc1, bc2);
        kernels.adamwStep(pP, gradP, mP, vP, n, 1e-3, 0.9, 0.95, 1e-8, 0.1, bc1, bc2);
      }
      assertClose(mem.readF32(pP, n), p, 1e-6, 'adamw p');
      assertClose(mem.readF32(mP, n), m, 1e-6, 'adamw m');
      assertClose(mem.readF32(vP, n), v, 1e-6, 'adamw v');

      const a = f32(rand(n));
      const b = f32(rand(n));
      const [aP, bP] = [a, b].map((x) => mem.f32(x));
      const sum = new Float32Array(n);
      ref.add(a, b, sum, n);
      kernels.add(aP, bP, outP, n);
      assertClose(mem.readF32(outP, n), sum, 1e-6, 'add');
      ref.axpy(-0.5, a, b, n);
      kernels.axpy(-0.5, aP, bP, n);
      assertClose(mem.readF32(bP, n), b, 1e-6, 'axpy');
      ref.scale(a, 3, a, n);
      kernels.scale(aP, 3, aP, n);
      assertClose(mem.readF32(aP, n), a, 1e-6, 'scale');
      const squares = kernels.sumSquares(aP, n);
      assert.ok(Math.abs(squares - ref.sumSquares(a, n)) < 1e-12 * squares, 'sumSquares');
    }
  });

  test(`${variant} softmax, chunked cross-entropy and bf16 conversion match the reference`, async () => {
    const { mem, kernels } = await harness(await binaryPromise);
    const { rows, vocab, chunks, targets } = CE;
    const rand = makeRandom(16);
    const logits = f32(rand(rows * vocab, 8));
    const targetsP = mem.i32(targets);

    const soft = new Float32Array(logits.length);
    ref.softmaxRows(logits, soft, rows, vocab);
    const softP = mem.f32(logits);
    kernels.softmaxRows(softP, softP, rows, vocab);
    assertClose(mem.readF32(softP, soft.length), soft, 1e-6, 'softmax');

    const runMax = new Float32Array(rows).fill(-Infinity);
    const runSum = new Float32Array(rows);
    const tgtLogit = new Float32Array(rows);
    const [maxP, sumP, tgtP] = [runMax, runSum, tgtLogit].map((a) => mem.f32(a));
    let colOffset = 0;
    for (const cols of chunks) {
      const chunk = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++)
        chunk.set(logits.subarray(r * vocab + colOffset, r * vocab + colOffset + cols), r * cols);
      ref.ceChunkForward(chunk, rows, cols, colOffset, targets, runMax, runSum, tgtLogit);
      kernels.ceChunkForward(mem.f32(chunk), rows, cols, colOffset, targetsP, maxP, sumP, tgtP);

      const lse = runMax.map((m, r) => m + Math.log(runSum[r]));
      const rowScale = f32([0.5, 1, 2, 0, 0.25]);
      const grad = chunk.slice();
      ref.ceChunkBackward(grad, rows, cols, colOffset, targets, lse, rowScale);
      const gradP = mem.f32(chunk);
      kernels.ceChunkBackward(
        gradP,
        rows,
        cols,
        colOffset,
        targetsP,
        mem.f32(lse),
        mem.f32(rowScale),
      );
      assertClose(mem.readF32(gradP, grad.length), grad, 1e-6, `ce backward chunk at ${colOffset}`);
      colOffset += cols;
    }
    assertClose(mem.readF32(maxP, rows), runMax, 0, 'runMax');
    assertClose(mem.readF32(sumP, rows), runSum, 1e-6, 'runSum');
    assertClose(mem.readF32(tgtP, rows), tgtLogit, 0, 'tgtLogit');

    const values = f32([
      ...rand(37, 100),
      1 + 2 ** -8,
      1 + 3 * 2 ** -8,
      NaN,
      -Infinity,
      3.4e38,
      -0,
    ]);
    const expectedBits = new Uint16Array(values.length);
    ref.f32ToBf16(values, expectedBits, values.length);
    const bitsP = mem.u16(values.length);
    kernels.f32ToBf16(mem.f32(values), bitsP, values.length);
    assert.deepEqual(mem.readU16(bitsP, values.length), expectedBits);
    const widened = new Float32Array(values.length);
    ref.bf16ToF32(expectedBits, widened, values.length);
    const widenedP = mem.f32(values.length);
    kernels.bf16ToF32(bitsP, widenedP, values.length);
    assert.deepEqual(mem.readF32(widenedP, values.length), widened);
  });
}

test('CpuKernels on the WasmRuntime worker pool (real threads) match the reference', async () => {
  const build = spawnSync(process.execPath, [
    fileURLToPath(new URL('../../scripts/build-wasm.mjs', import.meta.url)),
  ]);
  assert.equal(build.status, 0, String(build.stderr));
  const runtime = await WasmRuntime.create({ threads: 2 });
  try {
    const kernels = new CpuKernels(runtime);
    const upload = (values: ArrayLike<number>): number => {
      const ptr = runtime.malloc(values.length * 4);
      runtime.f32(ptr, values.length).set(values);
      return ptr;
    };
    const [B, T, H, KVH, D] = [2, 40, 4, 2, 64];
    const rand = makeRandom(17);
    const q = f32(rand(B * T * H * D));
    const k = f32(rand(B * T * KVH * D));
    const v = f32(rand(B * T * KVH * D));
    const dout = f32(rand(q.length));
    const segIds = Int32Array.from({ length: B * T }, (_, i) => 1 + Math.floor((i % T) / 15));
    const out = new Float32Array(q.length);
    const lse = new Float32Array(B * H * T);
    const [dq, dk, dv] = [q, k, v].map((a) => new Float32Array(a.length));
    ref.attentionForward(q, k, v, out, lse, B, T, T, T, H, KVH, D, null, segIds, 0.125);
    ref.attentionBackward(
      q,
      k,
      v,
      out,
      lse,
      dout,
      dq,
      dk,
      dv,
      B,
      T,
      H,
      KVH,
      D,
      null,
      segIds,
      0.125,
    );

    const [qP, kP, vP, doP] = [q, k, v, dout].map(upload);
    const segP = runtime.malloc(segIds.length * 4);
    runtime.i32(segP, segIds.length).set(segIds);
    const [outP, lseP, dqP, dkP, dvP] = [q.length, lse.length, q.length, k.length, v.length].map(
      (n) => runtime.malloc(n * 4),
    );
    kernels.attentionForward(qP, kP, vP, outP, lseP, B, T, T, T, H, KVH, D, 0, segP, 0.125);
    kernels.attentionBackward(
      qP,
      kP,
      vP,
      outP,
      lseP,
      doP,
      dqP,
      dkP,
      dvP,
      B,
      T,
      H,
      KVH,
      D,
      0,
      segP,
      0.125,
    );
    assertClose(runtime.f32(outP, out.length), out, 1e-5, 'out');
    assertClose(runtime.f32(dqP, dq.length), dq, 1e-5, 'dq');
    assertClose(runtime.f32(dkP, dk.length), dk, 1e-5, 'dk');
    assertClose(runtime.f32(dvP, dv.length), dv, 1e-5, 'dv');

    const [rows, dim] = [64, 896];
    const x = f32(rand(rows * dim));
    const w = f32(rand(dim));
    const g = f32(rand(rows * dim));
    const normOut = new Float32Array(x.length);
    const rstd = new Float32Array(rows);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(dim);
    ref.rmsnormForward(x, w, normOut, rstd, rows, dim, 1e-6);
    ref.rmsnormBackward(x, w, rstd, g, dx, dw, rows, dim);
    const [xP, wP, gP] = [x, w, g].map(upload);
    const [normOutP, rstdP, dxP] = [x.length, rows, x.length].map((n) => runtime.malloc(n * 4));
    const dwP = upload(new Float32Array(dim));
    kernels.rmsnormForward(xP, wP, normOutP, rstdP, rows, dim, 1e-6);
    kernels.rmsnormBackward(xP, wP, rstdP, gP, dxP, dwP, rows, dim);
    assertClose(runtime.f32(normOutP, x.length), normOut, 1e-5, 'rmsnorm out');
    assertClose(runtime.f32(dxP, x.length), dx, 1e-5, 'rmsnorm dx');
    assertClose(runtime.f32(dwP, dim), dw, 1e-5, 'rmsnorm dw');
  } finally {
    runtime.dispose();
  }
});

test('ceOnlineChunk (wasm) matches the reference across chunks, with the accumulator', async () => {
  const { WasmRuntime } = await import('../../src/engine/cpu/runtime.ts');
  const { CpuKernels } = await import('../../src/engine/cpu/kernels.ts');
  const ref = await import('../../src/engine/cpu/reference-kernels.ts');
  const rt = await WasmRuntime.create({ threads: 2 });
  const kernels = new CpuKernels(rt, { minParallelFlops: 0 });
  const [rows, vocab, chunk, accCols] = [5, 70, 16, 6];
  const logitsAll = Float32Array.from(
    { length: rows * vocab },
    (_, i) => Math.sin(i * 1.7) * 4 + (i % 13) * 0.3,
  );
  const targets = Int32Array.from([3, 69, 16, 40, 0]);
  const mine = {
    max: rt.malloc(rows * 4),
    sum: rt.malloc(rows * 4),
    tgt: rt.malloc(rows * 4),
    acc: rt.malloc(rows * accCols * 4),
  };
  const tgtPtr = rt.malloc(rows * 4);
  rt.i32(tgtPtr, rows).set(targets);
  rt.f32(mine.max, rows).fill(-Infinity);
  rt.f32(mine.sum, rows).fill(0);
  rt.f32(mine.acc, rows * accCols).fill(1);
  const expected = {
    max: new Float32Array(rows).fill(-Infinity),
    sum: new Float32Array(rows),
    tgt: new Float32Array(rows),
    acc: new Float32Array(rows * accCols).fill(1),
  };
  const logitsPtr = rt.malloc(rows * chunk * 4);
  for (let c0 = 0; c0 < vocab; c0 += chunk) {
    const cols = Math.min(chunk, vocab - c0);
    const part = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++)
      part.set(logitsAll.subarray(r * vocab + c0, r * vocab + c0 + cols), r * cols);
    rt.f32(logitsPtr, rows * cols).set(part);
    kernels.ceOnlineChunk(
      logitsPtr,
      rows,
      cols,
      c0,
      tgtPtr,
      mine.max,
      mine.sum,
      mine.tgt,
      mine.acc,
      accCols,
    );
    ref.ceOnlineChunk(
      part,
      rows,
      cols,
      c0,
      targets,
      expected.max,
      expected.sum,
      expected.tgt,
      expected.acc,
      accCols,
    );
    const written = rt.f32(logitsPtr, rows * cols);
    for (let i = 0; i < part.length; i++)
      assert.ok(Math.abs(written[i]! - part[i]!) <= 1e-6 * Math.max(1, part[i]!), `exp ${i}`);
  }
  for (const key of ['max', 'sum', 'tgt', 'acc'] as const) {
    const got = rt.f32(mine[key], key === 'acc' ? rows * accCols : rows);
    got.forEach((v, i) =>
      assert.ok(
        Math.abs(v - expected[key][i]!) <= 1e-5 * Math.max(1, Math.abs(expected[key][i]!)),
        `${key}[${i}]: ${v} vs ${expected[key][i]}`,
      ),
    );
  }
  rt.dispose();
});
