/**
 * CPU compute runtime: one shared WebAssembly.Memory holding all CPU tensor data, a JS-side
 * allocator over it, the kernel module (build/loraforge*.wasm) instantiated on the main thread and
 * in every pool thread, a synchronous multi-threaded GEMM and `parallelFor` for other kernels.
 * What differs between Node and a browser (reading the kernels, thread count, worker pool) comes
 * from a `RuntimeHost`: node-host.ts registers Node's (worker threads), a page passes its own
 * (browser-host.ts, one thread).
 */
import { LoraforgeError } from '../../util/errors.ts';
import { FreeListAllocator } from './allocator.ts';
import { CONTROL_BLOCK_BYTES, type ExportedFunction, type ThreadPool } from './thread-pool.ts';

export type MatrixDtype = 'f32' | 'bf16' | 'f16';

/** C[m,n] = alpha * op(A) * op(B) + beta * C (+ bias[n]); row-major; pointers are byte offsets. */
export interface GemmArgs {
  m: number;
  n: number;
  k: number;
  /** op(A) is [m,k]: A is [m,k] (lda >= k), or [k,m] (lda >= m) when transA. */
  a: number;
  lda: number;
  transA: boolean;
  aDtype: MatrixDtype;
  /** op(B) is [k,n]: B is [k,n] (ldb >= n), or [n,k] (ldb >= k) when transB, e.g. weights [out,in]. */
  b: number;
  ldb: number;
  transB: boolean;
  bDtype: MatrixDtype;
  /** f32 [m,n], ldc >= n. */
  c: number;
  ldc: number;
  alpha?: number;
  /** 0 (default) overwrites C without reading it. */
  beta?: number;
  /** Optional f32 [n] pointer added to every row. */
  bias?: number;
}

export interface RuntimeOptions {
  /** Threads including the main one; defaults to the host's (Node: os.availableParallelism()). */
  threads?: number;
  /** Use the relaxed-SIMD (FMA) build when the engine supports it; default true. */
  relaxed?: boolean;
  /** Where kernels and threads come from; default: the registered one (`registerRuntimeHost`). */
  host?: RuntimeHost;
}

/** What a platform provides to the runtime. */
export interface RuntimeHost {
  /** The bytes of a kernel build (`loraforge.wasm`, `loraforge-relaxed.wasm`). */
  readKernels(name: string): Promise<Uint8Array<ArrayBuffer>>;
  defaultThreads(): number;
  /** Engine settings to make before compiling (Node: V8 flags). */
  prepareCompiler?(): void;
  /** Whether a relaxed-SIMD module compiles here (default: `WebAssembly.validate`). */
  supportsRelaxedSimd?(bytes: Uint8Array<ArrayBuffer>): boolean;
  /** The wide build (loraforge-wide.wasm) to use instead of the relaxed one, if it is better here. */
  wideKernels?(relaxed: WebAssembly.Module): Promise<WebAssembly.Module | undefined>;
  /** A pool of `threads` threads (the calling one included) over `memory`. */
  startPool(
    module: WebAssembly.Module,
    memory: WebAssembly.Memory,
    controlOffset: number,
    threads: number,
    mainExports: Record<string, ExportedFunction>,
  ): Promise<ThreadPool>;
}

let registeredHost: RuntimeHost | undefined;

/** Sets the host runtimes use when none is passed (node-host.ts registers Node's on import). */
export function registerRuntimeHost(host: RuntimeHost): void {
  registeredHost = host;
}

const PAGE_BYTES = 65536;
const MAX_PAGES = 65536; // 4 GiB: the wasm32 address space
const INITIAL_PAGES = 256; // 16 MiB
const MIN_GROW_PAGES = 256;
/** Page 0 is never handed out: address 0 stays an invalid "null" pointer, and the pool's control block lives here. */
const CONTROL_BLOCK_OFFSET = 1024;
/** The heap starts after page 0 and never overlaps the control block. */
const HEAP_START = Math.max(PAGE_BYTES, CONTROL_BLOCK_OFFSET + CONTROL_BLOCK_BYTES);
/** Below this many multiply-adds a GEMM runs on the calling thread: waking workers would cost more. */
const PARALLEL_GEMM_MIN_MULTIPLY_ADDS = 1 << 20;
const DTYPE_CODES: Record<MatrixDtype, number> = { f32: 0, bf16: 1, f16: 2 };

export class WasmRuntime {
  private readonly allocator: FreeListAllocator;
  private gemmScratch = 0;
  private readonly gemmScratchStride: number;

  private constructor(
    readonly memory: WebAssembly.Memory,
    readonly exports: Record<string, ExportedFunction>,
    private readonly pool: ThreadPool,
    /** Which kernel build is in use: SIMD128, relaxed SIMD (FMA), or relaxed with the wide GEMM. */
    readonly kernels: KernelBuild,
  ) {
    this.allocator = new FreeListAllocator(HEAP_START, memory.buffer.byteLength, (minEnd) =>
      this.growTo(minEnd),
    );
    this.gemmScratchStride = Math.ceil(Number(exports.gemmScratchBytes()) / 64) * 64;
  }

  static async create(opts: RuntimeOptions = {}): Promise<WasmRuntime> {
    const host = opts.host ?? registeredHost;
    if (!host) {
      throw new LoraforgeError(
        'the CPU backend has no runtime host',
        "in Node import engine/cpu/node-host.ts (engine/select-backend.ts does); in a page pass browser-host.ts's",
      );
    }
    const threads = opts.threads ?? host.defaultThreads();
    if (!Number.isInteger(threads) || threads < 1)
      throw new LoraforgeError(`threads must be a positive integer, got ${threads}`);
    const { module, kernels } = await compileKernels(host, opts.relaxed ?? true);
    const memory = new WebAssembly.Memory({
      initial: INITIAL_PAGES,
      maximum: MAX_PAGES,
      shared: true,
    });
    const instance = new WebAssembly.Instance(module, { env: { memory } });
    const exports = instance.exports as Record<string, ExportedFunction>;
    const pool = await host.startPool(module, memory, CONTROL_BLOCK_OFFSET, threads, exports);
    return new WasmRuntime(memory, exports, pool, kernels);
  }

  get threads(): number {
    return this.pool.threads;
  }

  /** A 64-byte-aligned block of at least `bytes` bytes (contents undefined); grows memory as needed. */
  malloc(bytes: number): number {
    return this.allocator.malloc(bytes);
  }

  free(ptr: number): void {
    this.allocator.free(ptr);
  }

  /** Bytes currently handed out (requests rounded up to 64). */
  get allocatedBytes(): number {
    return this.allocator.allocatedBytes;
  }

  // Views are made fresh on each call: memory.buffer changes length when the memory grows.
  f32(ptr: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, length);
  }

  u16(ptr: number, length: number): Uint16Array {
    return new Uint16Array(this.memory.buffer, ptr, length);
  }

  i32(ptr: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, length);
  }

  u8(ptr: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, length);
  }

  /** Runs wasm export `exportName(...args, start, end)` over [start, end) slices of [0, total) on all threads. */
  parallelFor(exportName: string, total: number, args: readonly number[]): void {
    this.pool.run(exportName, total, args);
  }

  /** Synchronous, multi-threaded C = alpha * op(A) * op(B) + beta * C (+ bias). */
  gemm(args: GemmArgs): void {
    const { m, n, k } = args;
    checkGemmArgs(args);
    if (m === 0 || n === 0) return;
    const parts = m * n * k < PARALLEL_GEMM_MIN_MULTIPLY_ADDS ? 1 : this.threads;
    const scratch = this.ensureGemmScratch();
    const callArgs = [...gemmKernelArgs(args), scratch, this.gemmScratchStride, parts];
    if (parts === 1) this.exports.gemmPart(...callArgs, 0, 1);
    else this.parallelFor('gemmPart', parts, callArgs);
  }

  /** Terminates the workers (the memory stays readable); the runtime must not be used afterwards. */
  dispose(): void {
    this.pool.dispose();
    if (sharedRuntimeValue === this) {
      sharedRuntime = undefined;
      sharedRuntimeValue = undefined;
    }
  }

  /** One packing-scratch region per thread, allocated on first use. */
  private ensureGemmScratch(): number {
    if (this.gemmScratch === 0)
      this.gemmScratch = this.malloc(this.gemmScratchStride * this.threads);
    return this.gemmScratch;
  }

  private growTo(minEnd: number): number {
    const pages = this.memory.buffer.byteLength / PAGE_BYTES;
    const neededPages = Math.ceil(minEnd / PAGE_BYTES);
    if (neededPages > MAX_PAGES) {
      throw new LoraforgeError(
        `CPU memory exhausted: need ${(minEnd / 2 ** 30).toFixed(2)} GiB, the wasm32 limit is 4 GiB`,
        'use a smaller batch size / sequence length, or the GPU backend',
      );
    }
    // Grow in steps of at least MIN_GROW_PAGES (or 1/8 of the current size) to keep grow calls rare.
    const growth = Math.min(
      MAX_PAGES - pages,
      Math.max(neededPages - pages, MIN_GROW_PAGES, pages >> 3),
    );
    this.memory.grow(growth);
    return this.memory.buffer.byteLength;
  }
}

/**
 * The GEMM kernel's leading arguments, shared by the wasm `gemmPart` and the native `gemm`: m, n,
 * k, A, lda, transA, A's dtype code, B, ldb, transB, B's dtype code, C, ldc, alpha, beta, bias
 * (0 for none); dtype codes 0 f32, 1 bf16, 2 f16.
 */
export function gemmKernelArgs(args: GemmArgs): number[] {
  return [
    args.m,
    args.n,
    args.k,
    args.a,
    args.lda,
    args.transA ? 1 : 0,
    DTYPE_CODES[args.aDtype],
    args.b,
    args.ldb,
    args.transB ? 1 : 0,
    DTYPE_CODES[args.bDtype],
    args.c,
    args.ldc,
    args.alpha ?? 1,
    args.beta ?? 0,
    args.bias ?? 0,
  ];
}

const GEMM_SIZE_FIELDS = ['m', 'n', 'k', 'lda', 'ldb', 'ldc'] as const;

/**
 * Throws a RangeError naming the first argument a GEMM kernel cannot take. Decoding calls it ~170
 * times a token, so it allocates nothing.
 */
export function checkGemmArgs(args: GemmArgs): void {
  for (const name of GEMM_SIZE_FIELDS) {
    const value = args[name];
    if (!Number.isInteger(value) || value < 0)
      throw new RangeError(`gemm: ${name} must be a non-negative integer, got ${value}`);
  }
  checkLeadingDim('lda', args.lda, args.transA ? args.m : args.k);
  checkLeadingDim('ldb', args.ldb, args.transB ? args.k : args.n);
  checkLeadingDim('ldc', args.ldc, args.n);
  if (!(args.aDtype in DTYPE_CODES))
    throw new RangeError(`gemm: unsupported aDtype '${args.aDtype}'`);
  if (!(args.bDtype in DTYPE_CODES))
    throw new RangeError(`gemm: unsupported bDtype '${args.bDtype}'`);
}

function checkLeadingDim(name: string, ld: number, rowLength: number): void {
  if (ld < rowLength)
    throw new RangeError(`gemm: ${name} (${ld}) is smaller than the row length (${rowLength})`);
}

/**
 * The kernel builds: plain SIMD128; relaxed SIMD (fused multiply-adds); relaxed with a 6-row GEMM
 * tile for V8's 256-bit revectorizer (build-wasm.mjs).
 */
export type KernelBuild = 'simd128' | 'relaxed' | 'wide';

/** Compiles the relaxed-SIMD build when asked for and supported (or the wide one, where the host finds it better), else the plain SIMD128 build. */
async function compileKernels(
  host: RuntimeHost,
  wantRelaxed: boolean,
): Promise<{ module: WebAssembly.Module; kernels: KernelBuild }> {
  host.prepareCompiler?.();
  if (wantRelaxed) {
    const bytes = await host.readKernels('loraforge-relaxed.wasm');
    if ((host.supportsRelaxedSimd ?? WebAssembly.validate)(bytes)) {
      const module = await WebAssembly.compile(bytes);
      const wide = await host.wideKernels?.(module);
      return wide ? { module: wide, kernels: 'wide' } : { module, kernels: 'relaxed' };
    }
  }
  return {
    module: await WebAssembly.compile(await host.readKernels('loraforge.wasm')),
    kernels: 'simd128',
  };
}

let sharedRuntime: Promise<WasmRuntime> | undefined;
let sharedRuntimeValue: WasmRuntime | undefined;

/** The process-wide default runtime, created on first use with `opts` (later calls ignore opts). */
export function getRuntime(opts?: RuntimeOptions): Promise<WasmRuntime> {
  sharedRuntime ??= WasmRuntime.create(opts).then((runtime) => (sharedRuntimeValue = runtime));
  return sharedRuntime;
}
