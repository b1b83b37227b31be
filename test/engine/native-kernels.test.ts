/**
 * The native kernels (native/src/kernels/*.cc) against the wasm exports they mirror
 * (src/engine/cpu/assembly/*.ts): each case calls one export with the same arguments (buffer
 * addresses, params, work range) in the wasm runtime and in every variant build under prebuilds/
 * that this CPU runs, and compares every buffer and the result. Each native call runs twice: on
 * the calling thread over the whole range, and through the addon's pool on 2 threads, whose
 * slices must compose to the same bits.
 */
import '../../src/engine/cpu/node-host.ts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WasmRuntime } from '../../src/engine/cpu/runtime.ts';
import { dropoutKeepScale, dropoutThreshold } from '../../src/engine/dropout.ts';
import { ADAMW, adamwScalars } from '../../src/engine/kernels/adamw.ts';
import { ATTENTION } from '../../src/engine/kernels/attention.ts';
import { CROSS_ENTROPY } from '../../src/engine/kernels/cross-entropy.ts';
import { ELEMENTWISE } from '../../src/engine/kernels/elementwise.ts';
import { RMSNORM } from '../../src/engine/kernels/rmsnorm.ts';
import { ROPE } from '../../src/engine/kernels/rope.ts';
import { QUANT } from '../../src/engine/kernels/quant.ts';
import { paramNumbers, type AnySpec } from '../../src/engine/kernels/spec.ts';
import { INT8_TABLE, type QuantType } from '../../src/engine/quant/formats.ts';
import {
  CODERS,
  bytesToWords,
  layoutOf,
  nestedOffset,
  quantize,
  type QuantizedData,
} from '../../src/engine/quant/quantize.ts';
import { f32ToBf16 } from '../../src/engine/half.ts';
import { ropeInverseFrequencies } from '../../src/models/rope-frequencies.ts';
import { Rng } from '../../src/util/rng.ts';
import { buildNeonRunner, runOnNeon } from '../native/qemu-runner.ts';

type Data = Float32Array | Int32Array;

/**
 * |native − wasm| ≤ rtol·|wasm| + atol·max|wasm| per element, the max over the whole buffer
 * (sums with cancellation err relative to their terms, not their result); NaN matches NaN.
 */
interface Tolerance {
  rtol: number;
  atol: number;
}

/** Same bits: no reduction, or one in the same order with the same roundings. */
const EXACT: Tolerance = { rtol: 0, atol: 0 };
/** Sums over another vector width, or fused where wasm rounds twice: a few f32 ulps. */
const REORDERED: Tolerance = { rtol: 1e-6, atol: 1e-6 };

/** One call of an export. */
interface Call {
  name: string;
  label: string;
  /** Buffers in argument order; null: absent (address 0). */
  buffers: (Data | null)[];
  /** Buffer index → the index of the buffer whose storage it shares (in place). */
  aliases?: Record<number, number>;
  params: number[];
  /** Work items of the [0, items) range; null: the export takes no range (sumSquares). */
  items: number | null;
  /** The native export's work items where they split the same work differently (attention). */
  nativeItems?: number;
  tolerance: Tolerance;
}

interface Outcome {
  buffers: (Data | null)[];
  result: number;
}

/** The exports of a loraforge-<variant>.node (native/src/napi.cc). */
interface Addon {
  info(): { variant: string; supported: boolean; kernels: string[] };
  alloc(bytes: number): ArrayBuffer;
  address(buffer: ArrayBuffer): number;
  free(address: number): void;
  kernelId(name: string): number;
  call(id: number, args: Float64Array, start: number, end: number): number;
  parallelFor(id: number, total: number, args: Float64Array): void;
  setThreads(threads: number): number;
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const prebuildDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

const rng = new Rng(2026);
const normals = (n: number, scale = 1) =>
  Float32Array.from({ length: n }, () => rng.normal(0, scale));
const ints = (values: number[]) => Int32Array.from(values);
const zeros = (n: number) => new Float32Array(n);
const params = (spec: AnySpec, values: Record<string, unknown>) => paramNumbers(spec, values);

function copy(data: Data): Data {
  return data.slice();
}

function sameKind(data: Data, buffer: ArrayBuffer | SharedArrayBuffer, offset: number): Data {
  return data instanceof Int32Array
    ? new Int32Array(buffer, offset, data.length)
    : new Float32Array(buffer, offset, data.length);
}

function runWasm(rt: WasmRuntime, call: Call): Outcome {
  const pointers = call.buffers.map((data) => (data ? rt.malloc(data.byteLength) : 0));
  for (const [index, target] of Object.entries(call.aliases ?? {}))
    pointers[Number(index)] = pointers[target]!;
  const view = (i: number) => sameKind(call.buffers[i]!, rt.memory.buffer, pointers[i]!);
  call.buffers.forEach((data, i) => {
    if (data && !(i in (call.aliases ?? {}))) view(i).set(data);
  });
  const exported = rt.exports[call.name] as (...args: number[]) => number | undefined;
  const range = call.items === null ? [] : [0, call.items];
  const result = Number(exported(...pointers, ...call.params, ...range) ?? NaN);
  const buffers = call.buffers.map((data, i) => data && copy(view(i)));
  for (const [i, pointer] of pointers.entries())
    if (pointer && !(i in (call.aliases ?? {}))) rt.free(pointer);
  return { buffers, result };
}

/** The call on `addon`, on the calling thread, or through its pool of `threads` threads. */
function runNative(addon: Addon, call: Call, threads: number): Outcome {
  const blocks = call.buffers.map((data) => (data ? addon.alloc(data.byteLength) : null));
  for (const [index, target] of Object.entries(call.aliases ?? {}))
    blocks[Number(index)] = blocks[target]!;
  const views = call.buffers.map((data, i) => data && sameKind(data, blocks[i]!, 0));
  call.buffers.forEach((data, i) => {
    if (data && !(i in (call.aliases ?? {}))) views[i]!.set(data);
  });
  const addresses = blocks.map((block) => (block ? addon.address(block) : 0));
  const id = addon.kernelId(call.name);
  assert.ok(id >= 0, `${addon.info().variant} has no kernel ${call.name}`);
  const args = Float64Array.from([...addresses, ...call.params]);
  const items = call.nativeItems ?? call.items;
  let result = NaN;
  if (threads > 1 && items !== null) {
    addon.setThreads(threads);
    try {
      addon.parallelFor(id, items, args);
    } finally {
      addon.setThreads(1);
    }
  } else {
    result = addon.call(id, args, 0, items ?? 0);
  }
  const buffers = views.map((view) => view && copy(view));
  for (const [i, block] of blocks.entries())
    if (block && !(i in (call.aliases ?? {}))) addon.free(addresses[i]!);
  return { buffers, result };
}

/** The largest finite magnitude in `data` (the scale of its values). */
function magnitude(data: Data): number {
  let max = 0;
  for (const value of data) if (Number.isFinite(value)) max = Math.max(max, Math.abs(value));
  return max;
}

/** The call on the arm64 (NEON) build, under qemu (test/native/qemu-runner.ts). */
function runNeon(call: Call): Outcome {
  const slots = new Map<number, number>(); // buffer index → the runner's buffer index
  const present: Data[] = [];
  call.buffers.forEach((data, i) => {
    if (data) slots.set(i, present.push(data) - 1);
  });
  const args = call.buffers.map((_, i) => {
    const slot = slots.get(call.aliases?.[i] ?? i);
    return slot === undefined ? 0 : { buffer: slot };
  });
  const run = runOnNeon({
    name: call.name,
    buffers: present.map((data) => new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
    args: [...args, ...call.params],
    start: 0,
    end: call.nativeItems ?? call.items ?? 0,
  });
  const buffers = call.buffers.map(
    (data, i) => data && sameKind(data, run.buffers[slots.get(i)!]!.buffer, 0),
  );
  return { buffers, result: run.result };
}

function assertClose(got: number, want: number, bound: number, what: string): void {
  if (Object.is(got, want) || got === want || (Number.isNaN(got) && Number.isNaN(want))) return;
  assert.ok(Math.abs(got - want) <= bound, `${what}: native ${got}, wasm ${want} (bound ${bound})`);
}

function assertOutcome(got: Outcome, want: Outcome, tolerance: Tolerance, what: string): void {
  const { rtol, atol } = tolerance;
  want.buffers.forEach((expected, b) => {
    if (!expected) return;
    const actual = got.buffers[b]!;
    const scale = atol * magnitude(expected);
    for (let i = 0; i < expected.length; i++) {
      const bound = rtol * Math.abs(expected[i]!) + scale;
      assertClose(actual[i]!, expected[i]!, bound, `${what}, buffer ${b} [${i}]`);
    }
  });
  assertClose(got.result, want.result, rtol * Math.abs(want.result), `${what}, result`);
}

function vectorCalls(): Call[] {
  const calls: Call[] = [];
  for (const n of [1, 37, 1003]) {
    const keep = dropoutKeepScale(0.3);
    const dropout = [n, dropoutThreshold(0.3), keep, 0xdeadbeef];
    const x = normals(n);
    calls.push(
      {
        name: 'add',
        label: `${n}`,
        buffers: [x, normals(n), zeros(n)],
        params: [n],
        items: n,
        tolerance: EXACT,
      },
      {
        name: 'dropoutApply',
        label: `${n}`,
        buffers: [x, zeros(n)],
        params: dropout,
        items: n,
        tolerance: EXACT,
      },
      {
        name: 'dropoutApply',
        label: `${n} in place, p 0.05, seed 7`,
        buffers: [x, null],
        aliases: { 1: 0 },
        params: [n, dropoutThreshold(0.05), dropoutKeepScale(0.05), 7],
        items: n,
        tolerance: EXACT,
      },
      {
        name: 'adamwStep',
        label: `${n}`,
        buffers: [
          normals(n),
          normals(n, 0.01),
          normals(n, 0.001),
          Float32Array.from(normals(n, 1e-4), Math.abs),
        ],
        params: params(ADAMW.adamwStep, {
          n,
          ...adamwScalars(1e-3, [0.9, 0.999], 1e-8, 0.01, 1 - 0.9 ** 3, 1 - 0.999 ** 3),
        }),
        items: n,
        tolerance: EXACT,
      },
      // Summed in float64 in another order.
      {
        name: 'sumSquares',
        label: `${n}`,
        buffers: [normals(n, 3)],
        params: [n],
        items: null,
        tolerance: { rtol: 1e-12, atol: 0 },
      },
    );
    // Gates up to ±100 reach exp's saturation and flush.
    const gate = Float32Array.from(normals(n, 4), (g, i) => (i % 17 === 5 ? g * 25 : g));
    for (const activation of ['silu', 'gelu_tanh'] as const) {
      const codes = (more: Record<string, unknown>) =>
        params(ELEMENTWISE.gatedBackward, { n, activation, ...more });
      calls.push(
        {
          name: 'gatedForward',
          label: `${n} ${activation}`,
          buffers: [gate, normals(n), zeros(n)],
          params: params(ELEMENTWISE.gatedForward, { n, activation }),
          items: n,
          tolerance: REORDERED,
        },
        {
          name: 'gatedBackward',
          label: `${n} ${activation}, in place`,
          buffers: [gate, normals(n), normals(n), null, null],
          aliases: { 3: 0, 4: 1 },
          params: codes({}),
          items: n,
          tolerance: REORDERED,
        },
      );
    }
  }
  return calls;
}

function normCalls(): Call[] {
  const calls: Call[] = [];
  for (const [rows, dim] of [
    [5, 300],
    [3, 37],
    [2, 896],
  ] as const) {
    const x = normals(rows * dim, 2);
    const w = normals(dim);
    const rstd = Float32Array.from({ length: rows }, () => 0.3 + rng.uniform());
    const dims = params(RMSNORM.rmsnormForward, { rows, dim, eps: 1e-6 });
    calls.push(
      {
        name: 'rmsnormForward',
        label: `${rows}x${dim}`,
        buffers: [x, w, zeros(rows * dim), zeros(rows)],
        params: dims,
        items: rows,
        tolerance: REORDERED,
      },
      {
        name: 'rmsnormForward',
        label: `${rows}x${dim}, rstd skipped`,
        buffers: [x, w, zeros(rows * dim), null],
        params: dims,
        items: rows,
        tolerance: REORDERED,
      },
      {
        name: 'rmsnormBackwardInput',
        label: `${rows}x${dim}, dx in dout`,
        buffers: [x, w, rstd, normals(rows * dim), null],
        aliases: { 4: 3 },
        params: [rows, dim],
        items: rows,
        tolerance: REORDERED,
      },
      {
        name: 'rmsnormBackwardWeight',
        label: `${rows}x${dim}`,
        buffers: [x, rstd, normals(rows * dim), normals(dim)],
        params: [rows, dim],
        items: dim,
        tolerance: REORDERED,
      },
    );
  }
  const ropeShapes = [
    {
      B: 2,
      T: 5,
      H: 3,
      D: 64,
      rotaryDim: 64,
      scale: 1,
      table: ropeInverseFrequencies(64, 500000, null),
    },
    {
      B: 1,
      T: 7,
      H: 2,
      D: 16,
      rotaryDim: 12,
      scale: 1.19,
      table: ropeInverseFrequencies(12, 10000, null),
    },
    {
      B: 2,
      T: 3,
      H: 5,
      D: 96,
      rotaryDim: 72,
      scale: 1,
      table: ropeInverseFrequencies(72, 10000, null),
    },
  ];
  for (const { B, T, H, D, rotaryDim, scale, table } of ropeShapes) {
    const positions = Int32Array.from({ length: B * T }, (_, i) => (i * 9973) % 40000);
    for (const inverse of [false, true]) {
      const x = normals(B * T * H * D);
      calls.push({
        name: 'ropeApply',
        label: `B${B} T${T} H${H} D${D} rotary ${rotaryDim}${inverse ? ', inverse in place' : ''}`,
        buffers: [x, inverse ? null : zeros(x.length), positions, table],
        aliases: inverse ? { 1: 0 } : {},
        params: params(ROPE.ropeApply, { B, T, H, D, inverse, rotaryDim, scale }),
        // Separate multiplies and adds, the angles in float64 as in wasm.
        items: B * T,
        tolerance: EXACT,
      });
    }
  }
  return calls;
}

function crossEntropyCalls(): Call[] {
  const calls: Call[] = [];
  for (const cols of [300, 37]) {
    const rows = 5;
    const accCols = 24;
    // Rows 0-1 start (−∞ / 0), rows 2-4 carry an earlier chunk's max below / above this chunk's.
    const runMax = Float32Array.from([-Infinity, -Infinity, 1, 30, -5]);
    const runSum = Float32Array.from([0, 0, 2.5, 1.25, 7]);
    const targets = ints([310, 450, -100, 320, 5]);
    const logits = normals(rows * cols, 8);
    const chunk = (colOffset: number, acc: number) =>
      params(CROSS_ENTROPY.ceOnlineChunk, { rows, cols, colOffset, accCols: acc });
    calls.push(
      {
        name: 'ceOnlineChunk',
        label: `${cols} columns at 300, accumulator`,
        buffers: [logits, targets, runMax, runSum, zeros(rows), normals(rows * accCols)],
        params: chunk(300, accCols),
        items: rows,
        tolerance: REORDERED,
      },
      {
        name: 'ceOnlineChunk',
        label: `${cols} columns, first chunk, no accumulator`,
        buffers: [
          logits,
          targets,
          new Float32Array(rows).fill(-Infinity),
          zeros(rows),
          zeros(rows),
          null,
        ],
        params: chunk(0, 0),
        items: rows,
        tolerance: REORDERED,
      },
      {
        name: 'ceChunkBackward',
        label: `${cols} columns, a zero row scale`,
        buffers: [
          logits,
          targets,
          Float32Array.from([9, 10, 11, 12, 13]),
          Float32Array.from([0.5, 1, 2, 0, 0.25]),
        ],
        params: params(CROSS_ENTROPY.ceChunkBackward, { rows, cols, colOffset: 300 }),
        items: rows,
        tolerance: REORDERED,
      },
    );
  }
  return calls;
}

/** Key mask (left padding in batch row 1, so its first queries see nothing) and 2-3 segments. */
function masks(B: number, kvCap: number) {
  const keyMask = Int32Array.from({ length: B * kvCap }, (_, i) =>
    i % kvCap < (i >= kvCap ? 4 : 0) ? 0 : 1,
  );
  const segIds = Int32Array.from(
    { length: B * kvCap },
    (_, i) => 1 + Math.floor(((i % kvCap) * (2 + (i >= kvCap ? 1 : 0))) / kvCap),
  );
  return { keyMask, segIds };
}

interface AttentionShape {
  B: number;
  T: number;
  H: number;
  KVH: number;
  D: number;
  masked?: boolean;
  window?: number;
}

function attentionCalls(): Call[] {
  const calls: Call[] = [];
  const shapes: AttentionShape[] = [
    { B: 2, T: 37, H: 4, KVH: 2, D: 16 },
    { B: 2, T: 37, H: 2, KVH: 1, D: 37, masked: true },
    { B: 2, T: 7, H: 4, KVH: 2, D: 6, masked: true, window: 3 },
    { B: 2, T: 19, H: 6, KVH: 2, D: 64, window: 5 },
    { B: 1, T: 40, H: 4, KVH: 4, D: 128, masked: true },
  ];
  for (const { B, T, H, KVH, D, masked = false, window = 0 } of shapes) {
    const label = `B${B} T${T} H${H}/${KVH} D${D}${masked ? ' masked, packed' : ''}${window ? `, window ${window}` : ''}`;
    const { keyMask, segIds } = masks(B, T);
    const [optionalMask, optionalSeg] = masked ? [keyMask, segIds] : [null, null];
    const [q, k, v] = [normals(B * T * H * D), normals(B * T * KVH * D), normals(B * T * KVH * D)];
    const scale = 1 / Math.sqrt(D);
    const forward = { B, Tq: T, Tk: T, kvCap: T, H, KVH, D, scale, window };
    const [out, lse] = [zeros(B * T * H * D), zeros(B * H * T)];
    ATTENTION.attentionForward.reference(
      { q, k, v, out, lse, keyMask: optionalMask, segIds: optionalSeg },
      forward,
      {} as never,
    );
    const dout = normals(out.length);
    const dims = params(ATTENTION.attentionBackward, { B, T, H, KVH, D, scale, window });
    const [dq, dk, dv] = [zeros(out.length), zeros(k.length), zeros(v.length)];
    const keyBlock = 8;
    calls.push(
      {
        name: 'attentionForward',
        label,
        buffers: [q, k, v, zeros(out.length), zeros(lse.length), optionalMask, optionalSeg],
        params: params(ATTENTION.attentionForward, forward),
        items: B * H,
        nativeItems: B * KVH * T,
        tolerance: REORDERED,
      },
      {
        name: 'attentionBackward',
        label,
        buffers: [q, k, v, out, lse, dout, dq, dk, dv, optionalMask, optionalSeg],
        params: dims,
        items: B * KVH,
        tolerance: REORDERED,
      },
      {
        name: 'attentionBackwardQuery',
        label,
        buffers: [q, k, v, out, lse, dout, dq, optionalMask, optionalSeg],
        params: dims,
        items: B * H,
        tolerance: REORDERED,
      },
      {
        name: 'attentionBackwardKeyValue',
        label: `${label}, key blocks of ${keyBlock}`,
        buffers: [q, k, v, out, lse, dout, dk, dv, optionalMask, optionalSeg],
        params: [...dims, keyBlock],
        items: B * KVH * Math.ceil(T / keyBlock),
        tolerance: REORDERED,
      },
    );
  }
  calls.push(
    // Decoding: 3 queries at positions 17..19 of 20 valid cache rows out of 24, NaN past Tk.
    decodeAttention({ B: 2, Tq: 3, Tk: 20, kvCap: 24, H: 4, KVH: 1, D: 64, window: 0 }),
    // One query per row: a Qwen2-0.5B layer, a short window, D = 37.
    decodeAttention({ B: 1, Tq: 1, Tk: 140, kvCap: 150, H: 14, KVH: 2, D: 64, window: 0 }),
    decodeAttention({ B: 2, Tq: 1, Tk: 23, kvCap: 24, H: 4, KVH: 2, D: 37, window: 6 }),
    decodeAttention({ B: 2, Tq: 1, Tk: 3, kvCap: 24, H: 2, KVH: 1, D: 16, window: 0 }),
  );
  return calls;
}

/** attentionForward of Tq new queries over Tk of kvCap cache rows (NaN past Tk), left padding. */
function decodeAttention(shape: {
  B: number;
  Tq: number;
  Tk: number;
  kvCap: number;
  H: number;
  KVH: number;
  D: number;
  window: number;
}): Call {
  const { B, Tq, Tk, kvCap, H, KVH, D, window } = shape;
  const cache = () => {
    const rows = normals(B * kvCap * KVH * D);
    for (let b = 0; b < B; b++)
      rows.fill(NaN, (b * kvCap + Tk) * KVH * D, (b + 1) * kvCap * KVH * D);
    return rows;
  };
  return {
    name: 'attentionForward',
    label: `decode: Tq ${Tq} < Tk ${Tk} < kvCap ${kvCap}, H${H}/${KVH} D${D}${window ? `, window ${window}` : ''}, NaN past Tk, left padding`,
    buffers: [
      normals(B * Tq * H * D),
      cache(),
      cache(),
      zeros(B * Tq * H * D),
      zeros(B * H * Tq),
      masks(B, kvCap).keyMask,
      null,
    ],
    params: params(ATTENTION.attentionForward, { ...shape, scale: 0.3 }),
    items: B * H,
    nativeItems: B * KVH * Tq,
    tolerance: REORDERED,
  };
}

/** The buffers (after x, before the output) and layout params of a quantized matrix. */
function quantArguments(q: QuantizedData, table: Float32Array) {
  return {
    buffers: [
      bytesToWords(q.codes),
      q.nested ? bytesToWords(q.nested.codes) : q.absmax!,
      q.nested?.absmax ?? null,
      table,
      q.nested?.table ?? null,
    ],
    params: {
      bits: layoutOf(q).bits,
      blockSize: q.blockSize,
      nested: q.nested !== null,
      nestedBlockSize: q.nested?.blockSize ?? 0,
      nestedOffset: q.nested?.offset ?? 0,
      postScale: layoutOf(q).postScale,
    },
  };
}

function quantCalls(): Call[] {
  const calls: Call[] = [];
  // [37, 45]: odd rows start on a low nibble and blocks straddle rows; [300, 256] and [24, 384]:
  // rows of whole 128-column chunks (AVX-512's wide path), 5 nested blocks; [24, 200]: int8 rows
  // with a tail of 8 after 12 groups.
  const matrices: [QuantType, boolean, number, number][] = [
    ['nf4', false, 37, 45],
    ['nf4', true, 300, 256],
    ['fp4', true, 40, 130],
    ['fp4', false, 24, 384],
    ['int8', false, 24, 200],
  ];
  for (const [type, doubleQuant, rows, cols] of matrices) {
    const q = quantize(normals(rows * cols, 0.05), [rows, cols], type, { doubleQuant });
    // int8 also with a table that is not the signed bytes (looked up code by code).
    const tables = type === 'int8' ? [q.table, INT8_TABLE.map((v) => v * 0.5 + 3)] : [q.table];
    for (const [t, table] of tables.entries()) {
      const name = `${type}${doubleQuant ? ' double quant' : ''} [${rows}, ${cols}]${t ? ', other table' : ''}`;
      const { buffers, params: layout } = quantArguments(q, table);
      const [firstRow, count] = [3, rows - 5];
      calls.push({
        name: 'dequantizeRows',
        label: `${name} rows ${firstRow}+${count}`,
        buffers: [...buffers, zeros(count * cols)],
        params: params(QUANT.dequantizeRows, { firstRow, rows: count, cols, ...layout }),
        items: count,
        tolerance: EXACT,
      });
      // 1-4 rows of x in one pass over W, 7 in two; a bias; y rows wider than the rows computed.
      for (const m of [1, 3, 7]) {
        const ldy = rows + 2;
        calls.push({
          name: 'quantizedMatmul',
          label: `${m} × ${name} rows ${firstRow}+${count}${m === 3 ? ', bias' : ''}`,
          buffers: [normals(m * cols), ...buffers, m === 3 ? normals(count) : null, zeros(m * ldy)],
          params: params(QUANT.quantizedMatmul, {
            rows: m,
            cols,
            firstRow,
            count,
            ldy,
            ...layout,
          }),
          items: count,
          tolerance: REORDERED,
        });
      }
    }
  }
  return calls;
}

/**
 * Flat tensors quantized in every mode (quantizeRows): odd counts, a partial last block, an f32
 * and a bf16 source (bf16 pairs packed in i32 words), codes over garbage the kernel must replace.
 */
function quantizeCalls(): Call[] {
  const cases = [
    ['nf4', 'f32', 1665, 64],
    ['fp4', 'bf16', 20_000, 64],
    ['int8', 'f32', 37 * 45, 45],
    ['dynamic', 'f32', 1625, 256],
  ] as const;
  return cases.map(([format, source, n, blockSize]) => {
    const coder = format === 'int8' ? null : CODERS[format];
    const values = normals(n, 0.05);
    if (format === 'dynamic') values.forEach((v, i) => (values[i] = Math.abs(v) + 0.01));
    const bits = format === 'nf4' || format === 'fp4' ? 4 : 8;
    const x = source === 'bf16' ? new Int32Array(f32ToBf16(values).buffer) : values;
    const blocks = Math.ceil(n / blockSize);
    return {
      name: 'quantizeRows',
      label: `${format} of ${n} ${source} values, blocks of ${blockSize}`,
      buffers: [
        x,
        coder?.bounds ?? null,
        coder ? Int32Array.from(coder.codes) : null,
        new Int32Array(Math.ceil((bits === 4 ? Math.ceil(n / 2) : n) / 4)).fill(-1),
        zeros(blocks),
      ],
      params: params(QUANT.quantizeRows, {
        n,
        blockSize,
        bits,
        mode: !coder ? 'int8' : coder.signBit ? 'signed' : 'nearest',
        offset: format === 'dynamic' ? nestedOffset(values) : 0,
        source,
      }),
      items: blocks,
      tolerance: EXACT,
    };
  });
}

const FAMILIES: Record<string, () => Call[]> = {
  'quantized weights': () => [...quantCalls(), ...quantizeCalls()],
  'vector ops, AdamW, sum of squares, gated activations': vectorCalls,
  'RMSNorm and RoPE': normCalls,
  'cross-entropy': crossEntropyCalls,
  attention: attentionCalls,
};

/** The variant builds this CPU runs, or why there are none. */
function loadAddons(): { addons: Addon[]; reason?: string } {
  const build = spawnSync(
    process.execPath,
    [join(root, 'scripts/build-native.mjs'), '--if-possible'],
    {
      encoding: 'utf8',
    },
  );
  if (build.status !== 0) return { addons: [], reason: `build-native failed: ${build.stderr}` };
  if (!existsSync(prebuildDir))
    return { addons: [], reason: `no native build (${build.stdout.trim()})` };
  const require = createRequire(import.meta.url);
  const addons = readdirSync(prebuildDir)
    .filter((name) => name.endsWith('.node'))
    .map((name) => require(join(prebuildDir, name)) as Addon)
    .filter((addon) => addon.info().supported);
  return addons.length
    ? { addons }
    : { addons, reason: `no variant in ${prebuildDir} runs on this CPU` };
}

describe('native kernels match their wasm exports', () => {
  let rt: WasmRuntime;
  let addons: Addon[] = [];
  let skipReason: string | undefined;
  before(async () => {
    ({ addons, reason: skipReason } = loadAddons());
    rt = await WasmRuntime.create({ threads: 1 });
  });
  after(() => rt.dispose());

  for (const [family, calls] of Object.entries(FAMILIES)) {
    describe(family, () => {
      for (const call of calls()) {
        it(`${call.name}: ${call.label}`, (t) => {
          if (skipReason) return t.skip(skipReason);
          const want = runWasm(rt, call);
          for (const addon of addons) {
            const { variant } = addon.info();
            const alone = runNative(addon, call, 1);
            assertOutcome(alone, want, call.tolerance, `${call.name} ${variant}`);
            if (call.items === null) continue;
            const sliced = runNative(addon, call, 2);
            assertOutcome(sliced, { ...alone, result: NaN }, EXACT, `${variant} on 2 threads`);
          }
        });
      }
    });
  }
});

describe('native kernels built for arm64 (NEON, under qemu-aarch64) match their wasm exports', () => {
  let rt: WasmRuntime;
  let skipReason: string | null = null;
  before(async () => {
    skipReason = buildNeonRunner();
    rt = await WasmRuntime.create({ threads: 1 });
  });
  after(() => rt.dispose());

  for (const [family, calls] of Object.entries(FAMILIES)) {
    describe(family, () => {
      for (const call of calls()) {
        it(`${call.name}: ${call.label}`, (t) => {
          if (skipReason) return t.skip(skipReason);
          assertOutcome(runNeon(call), runWasm(rt, call), call.tolerance, `${call.name} neon`);
        });
      }
    });
  }
});
