/**
 * `npm run bench:gemm -- --device native [--variant NAME,...] [--shape NAME,...] [--json]`: GEMM throughput of every
 * native ISA variant built here that this CPU runs (prebuilds/, scripts/build-native.mjs) on the
 * 0.5B model's shapes, with 1 and 2 threads, exact (precision 0) and with bf16 products
 * (precision 1), beside the wasm GEMM measured in the same run, and the variants' measured
 * multiply-add peaks (fmaPeak, bf16DotPeak) with each rate as a share of them. Rates are also
 * given in CPU time (flops / CPU seconds per thread): what the threads reached while they ran,
 * which wall-clock rates only show on an otherwise idle machine.
 */
import '../src/engine/cpu/node-host.ts';
import { loadavg } from 'node:os';
import { WasmRuntime } from '../src/engine/cpu/runtime.ts';
import {
  buildNativeIfPossible,
  loadNativeVariants,
  nativeSkipReason,
  type NativeAddon,
  type NativeVariantBuild,
} from '../test/engine/native-variants.ts';
import { emitJson, jsonMode, machine, say } from './common.ts';
import { fmaCeilingGflops } from './flops.ts';
import {
  FORMS,
  SHAPES,
  THREADS,
  fillRandom,
  fillRandomBf16,
  gflops,
  leadingDimensions,
  timeIt,
  timeWasmForms,
  warmUpWorthIt,
  type GemmForm,
  type Shape,
  type Timing,
} from './gemm-common.ts';

const DTYPE_CODES = { f32: 0, bf16: 1, f16: 2 } as const;
/** The forms measured natively: those of the wasm benchmark, and bf16 weights at precision 1. */
const NATIVE_FORMS: Array<{ form: GemmForm; precision: 0 | 1; label: string }> = [
  ...FORMS.map((form) => ({ form, precision: 0 as const, label: form.name })),
  { form: FORMS.find((f) => f.bDtype === 'bf16')!, precision: 1, label: 'bf16 transB p1' },
];

interface Peaks {
  /** GFLOP/s per thread of the variant's f32 multiply-add chains (CPU time). */
  fma: number;
  /** Same with VDPBF16PS, or 0 where the variant has none. */
  bf16Dot: number;
}

/** GFLOP/s of a probe kernel on the calling thread, best of three, in CPU time. */
function probeGflops(addon: NativeAddon, kernel: string): number {
  const id = addon.kernelId(kernel);
  const args = new Float64Array([20_000_000]);
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const start = process.cpuUsage();
    const flops = addon.call(id, args, 0, 1);
    const cpu = process.cpuUsage(start);
    best = Math.max(best, flops / ((cpu.user + cpu.system) / 1e6) / 1e9);
  }
  return best;
}

/** GB/s of a parallel read of 512 MiB (streamRead), best of three, wall clock. */
function streamReadGBs(addon: NativeAddon, threads: number): number {
  const bytes = 512 * 2 ** 20;
  const buffer = addon.alloc(bytes);
  new Uint8Array(buffer).fill(1);
  addon.setThreads(threads);
  const id = addon.kernelId('streamRead');
  const args = new Float64Array([addon.address(buffer), bytes]);
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const start = performance.now();
    addon.call(id, args, 0, 1);
    best = Math.max(best, bytes / ((performance.now() - start) / 1000) / 1e9);
  }
  addon.free(addon.address(buffer));
  return best;
}

interface Result {
  shape: string;
  m: number;
  n: number;
  k: number;
  form: string;
  precision: number;
  threads: number;
  /** 'wasm', or the native variant's name. */
  backend: string;
  gflops: number;
  cpuTimeGflops: number;
  /** cpuTimeGflops / (threads x the backend's peak for this precision). */
  ofPeak: number;
}

/** Times one native variant's gemm on random operands of `shape`, every form. */
function timeNativeForms(addon: NativeAddon, shape: Shape): Timing[] {
  const { m, n, k } = shape;
  const alloc = (bytes: number) => {
    const buffer = addon.alloc(bytes);
    return { buffer, address: addon.address(buffer) };
  };
  const a = alloc(m * k * 4);
  const bF32 = alloc(k * n * 4);
  const bBf16 = alloc(k * n * 2);
  const c = alloc(m * n * 4);
  fillRandom(new Float32Array(a.buffer));
  fillRandom(new Float32Array(bF32.buffer));
  fillRandomBf16(new Uint16Array(bBf16.buffer));
  const id = addon.kernelId('gemm');
  const timings = NATIVE_FORMS.map(({ form, precision }) => {
    const { lda, ldb } = leadingDimensions(shape, form);
    const b = form.bDtype === 'f32' ? bF32 : bBf16;
    const args = new Float64Array([
      m,
      n,
      k,
      a.address,
      lda,
      form.transA ? 1 : 0,
      DTYPE_CODES.f32,
      b.address,
      ldb,
      form.transB ? 1 : 0,
      DTYPE_CODES[form.bDtype],
      c.address,
      n,
      1,
      0,
      0,
      precision,
    ]);
    return timeIt(() => addon.call(id, args, 0, 1), warmUpWorthIt(shape));
  });
  for (const x of [a, bF32, bBf16, c]) addon.free(x.address);
  return timings;
}

function selectedVariants(): NativeVariantBuild[] {
  buildNativeIfPossible();
  const found = loadNativeVariants();
  const reason = nativeSkipReason(found);
  if (reason) throw new Error(`bench:gemm --device native: ${reason}`);
  const at = process.argv.indexOf('--variant');
  if (at < 0) return found.runnable;
  const wanted = process.argv[at + 1]!.split(',');
  const chosen = found.runnable.filter((v) => wanted.includes(v.name));
  if (chosen.length !== wanted.length) {
    throw new Error(
      `--variant ${wanted.join(',')}: this machine runs ${found.runnable.map((v) => v.name).join(', ')}`,
    );
  }
  return chosen;
}

const variants = selectedVariants();
const host = { ...machine(), loadAverage1m: loadavg()[0]! };
say(
  `machine: ${host.cpu}, ${host.cores} cores, ${host.memoryGiB} GiB, Node ${host.node}, ` +
    `load average ${host.loadAverage1m.toFixed(1)} (others on the cores lower wall-clock rates)`,
);
const runtimes = await Promise.all(THREADS.map((threads) => WasmRuntime.create({ threads })));
const wasmPeak = fmaCeilingGflops(runtimes[0]!);
const peaks: Record<string, Peaks> = {};
for (const { name, addon } of variants) {
  peaks[name] = { fma: probeGflops(addon, 'fmaPeak'), bf16Dot: probeGflops(addon, 'bf16DotPeak') };
}
const best = variants.at(-1)!;
const streamRead = streamReadGBs(best.addon, Math.max(...THREADS));
say(`peaks per thread (CPU time): wasm SIMD multiply-add ${wasmPeak.toFixed(1)} GFLOP/s`);
for (const [name, p] of Object.entries(peaks)) {
  const dot = p.bf16Dot > 0 ? `, VDPBF16PS ${p.bf16Dot.toFixed(1)}` : '';
  say(`  ${name.padEnd(11)} f32 FMA ${p.fma.toFixed(1)}${dot} GFLOP/s`);
}
say(`stream read (${best.name}, ${Math.max(...THREADS)} threads): ${streamRead.toFixed(1)} GB/s`);
say(
  'GFLOP/s wall clock (CPU-time rate, % of threads x peak: the f32 FMA peak, VDPBF16PS for p1 on ' +
    'avx512bf16); p1 = precision 1 (bf16 products; exact where the variant has none)',
);
say(
  `${'shape'.padEnd(26)} ${'form'.padEnd(15)} T  ${['wasm', ...variants.map((v) => v.name)].map((s) => s.padStart(22)).join('')}`,
);

const results: Result[] = [];
function record(r: Omit<Result, 'ofPeak'>, peak: number): Result {
  const full = { ...r, ofPeak: r.cpuTimeGflops / (r.threads * peak) };
  results.push(full);
  return full;
}

function cell(r: Result): string {
  return `${r.gflops.toFixed(1)} (${r.cpuTimeGflops.toFixed(0)}, ${(100 * r.ofPeak).toFixed(0)}%)`.padStart(
    22,
  );
}

/** `--shape attn,lm` keeps the shapes whose names contain one of the words (default all). */
function selectedShapes(): Shape[] {
  const at = process.argv.indexOf('--shape');
  if (at < 0) return SHAPES;
  const words = process.argv[at + 1]!.split(',');
  return SHAPES.filter((s) => words.some((w) => s.name.includes(w)));
}

for (const shape of selectedShapes()) {
  const { m, n, k } = shape;
  const base = { shape: shape.name, m, n, k };
  for (const threads of THREADS) {
    const rt = runtimes[THREADS.indexOf(threads)]!;
    const wasm = timeWasmForms(rt, shape, FORMS);
    const native = variants.map(({ addon }) => {
      addon.setThreads(threads);
      return timeNativeForms(addon, shape);
    });
    NATIVE_FORMS.forEach(({ form, precision, label }, f) => {
      const rate = (t: Timing) => ({
        gflops: gflops(shape, t.seconds),
        cpuTimeGflops: gflops(shape, t.cpuSeconds / threads),
      });
      // wasm has no bf16 products: its p1 column is its exact bf16 transB figure again.
      const wasmTiming = wasm[FORMS.indexOf(form)]!;
      const row = [
        record(
          { ...base, form: label, precision, threads, backend: 'wasm', ...rate(wasmTiming) },
          wasmPeak,
        ),
        ...variants.map((v, i) => {
          const p = peaks[v.name]!;
          const peak = precision === 1 && p.bf16Dot > 0 ? p.bf16Dot : p.fma;
          return record(
            { ...base, form: label, precision, threads, backend: v.name, ...rate(native[i]![f]!) },
            peak,
          );
        }),
      ];
      say(
        `${`${shape.name} ${m}x${n}x${k}`.padEnd(26)} ${label.padEnd(15)} ${threads}  ${row.map(cell).join('')}`,
      );
    });
  }
}
for (const rt of runtimes) rt.dispose();
if (jsonMode) {
  emitJson({
    loadAverage1m: host.loadAverage1m,
    peaksGflopsPerThread: { wasm: wasmPeak, ...peaks },
    streamReadGBs: streamRead,
    results,
  });
}
