/**
 * The start-up check that picks the wide kernel build (loraforge-wide.wasm: the relaxed-SIMD
 * build with a 6 x 16 GEMM tile) over the relaxed one. V8's experimental 256-bit revectorizer
 * (v8-flags.ts) turns that tile's 128-bit operations into AVX2 ones, about 1.7x the GEMM
 * throughput; without the revectorizer the same tile spills registers and runs slower. The flag is
 * experimental, so the wide build is used only where its GEMM, run here on the exact shapes and
 * forms below, equals the relaxed build's bit for bit (the same products summed in the same order)
 * and is clearly faster on this machine. Node only (it times with process.cpuUsage).
 */
import type { ExportedFunction } from './thread-pool.ts';

/** How much faster than the relaxed build (CPU time) the wide one must be to be chosen. */
const REQUIRED_SPEEDUP = 1.2;
const TIMED_SHAPE = { m: 384, n: 768, k: 768 };
/** Edge sizes (not multiples of the 6 x 16 tile), several K slices, every transpose. */
const CHECKED_SHAPES = [
  { m: 100, n: 200, k: 300, transA: false, transB: true },
  { m: 37, n: 61, k: 520, transA: true, transB: false },
  { m: 13, n: 40, k: 70, transA: false, transB: false },
];
const PAGE_BYTES = 65536;
const MEMORY_PAGES = 256; // 16 MiB: the largest shape's operands and one packing scratch

export interface WideKernelVerdict {
  chosen: boolean;
  /** Relaxed build's CPU time over the wide build's on the timed shape (0 when not timed). */
  speedup: number;
  /** Why the wide build was not chosen. */
  reason?: string;
}

type Exports = Record<string, ExportedFunction>;

/** Runs both builds' GEMM side by side (one thread, a private memory) and says which to use. */
export function checkWideKernels(
  relaxed: WebAssembly.Module,
  wide: WebAssembly.Module,
  requiredSpeedup = REQUIRED_SPEEDUP,
): WideKernelVerdict {
  // Both builds share one private memory, so that they multiply the same bytes.
  const memory = new WebAssembly.Memory({
    initial: MEMORY_PAGES,
    maximum: MEMORY_PAGES,
    shared: true,
  });
  const instantiate = (module: WebAssembly.Module) =>
    new WebAssembly.Instance(module, { env: { memory } }).exports as Exports;
  const relaxedExports = instantiate(relaxed);
  const wideExports = instantiate(wide);
  for (const shape of CHECKED_SHAPES) {
    if (!sameProducts(relaxedExports, wideExports, memory, shape))
      return { chosen: false, speedup: 0, reason: 'results differ from the relaxed build' };
  }
  const timed = { ...TIMED_SHAPE, transA: false, transB: true };
  const best = { relaxed: Infinity, wide: Infinity };
  for (let rep = 0; rep < 5; rep++) {
    best.relaxed = Math.min(
      best.relaxed,
      cpuTime(() => run(relaxedExports, memory, timed)),
    );
    best.wide = Math.min(
      best.wide,
      cpuTime(() => run(wideExports, memory, timed)),
    );
  }
  const speedup = best.relaxed / best.wide;
  return speedup >= requiredSpeedup
    ? { chosen: true, speedup }
    : { chosen: false, speedup, reason: `only ${speedup.toFixed(2)}x the relaxed build` };
}

interface Shape {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

/** Layout in the private memory: A, B, C, then the packing scratch. */
function layout(exports: Exports, shape: Shape) {
  const a = PAGE_BYTES;
  const b = a + shape.m * shape.k * 4;
  const c = b + shape.k * shape.n * 4;
  const scratch = Math.ceil((c + shape.m * shape.n * 4) / 64) * 64;
  const scratchBytes = Math.ceil(Number(exports.gemmScratchBytes()) / 64) * 64;
  return { a, b, c, scratch, scratchBytes };
}

function run(exports: Exports, memory: WebAssembly.Memory, shape: Shape): Float32Array {
  const { m, n, k, transA, transB } = shape;
  const at = layout(exports, shape);
  if (at.scratch + at.scratchBytes > memory.buffer.byteLength)
    throw new RangeError('wide-kernel check: shape too large for its memory');
  exports.gemmPart(
    m, n, k,
    at.a, transA ? m : k, transA ? 1 : 0, 0,
    at.b, transB ? k : n, transB ? 1 : 0, 0,
    at.c, n, 1, 0, 0,
    at.scratch, at.scratchBytes, 1, 0, 1,
  ); // prettier-ignore
  return new Float32Array(memory.buffer, at.c, m * n).slice();
}

function sameProducts(
  relaxed: Exports,
  wide: Exports,
  memory: WebAssembly.Memory,
  shape: Shape,
): boolean {
  const at = layout(relaxed, shape);
  fillRandom(new Float32Array(memory.buffer, at.a, shape.m * shape.k + shape.k * shape.n), 1);
  const expected = run(relaxed, memory, shape);
  const actual = run(wide, memory, shape);
  const expectedBits = new Uint32Array(expected.buffer);
  const actualBits = new Uint32Array(actual.buffer);
  return expectedBits.every((bits, i) => bits === actualBits[i]);
}

/** Deterministic values in [-1, 1) (a 32-bit LCG). */
function fillRandom(values: Float32Array, seed: number): void {
  let state = seed >>> 0;
  for (let i = 0; i < values.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = state / 2 ** 31 - 1;
  }
}

/** CPU time of `fn` (this process), less sensitive than wall time to other processes' load. */
function cpuTime(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return used.user + used.system;
}
