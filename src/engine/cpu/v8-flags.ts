/**
 * The V8 settings the CPU kernels need, set from inside the library (never on the command line:
 * Node >= 22 rejects flags it no longer knows, such as --experimental-wasm-relaxed-simd). They
 * take effect for modules compiled afterwards, so they are applied before the first compile.
 */
import { setFlagsFromString } from 'node:v8';

const V8_MAJOR = Number(process.versions.v8.split('.')[0]);

/** Compile every kernel with the optimizing tier up front; call before compiling the kernels. */
export function prepareWasmCompiler(): void {
  // V8 first runs wasm from its baseline compiler (Liftoff, ~4x slower here) and swaps in optimized
  // code only for later calls; a long kernel call (an LM-head GEMM takes seconds) would run entirely
  // on the baseline code. Compile everything optimized up front instead (the module is small).
  setFlagsFromString('--no-liftoff');
  // Flags set here skip the implications V8 applies to command-line flags. One of them matters:
  // V8 14 (Node 25+; Node 24's V8 13 has it off) turns on wasm deopts, which let optimized code
  // make speculative assumptions and fall back to the function's Liftoff frame when they fail.
  // With Liftoff off there is no such frame, and compiling a kernel aborts the process on a
  // fatal CHECK ("function_feedback != feedback.feedback_for_function.end()", in
  // GetLiftoffFrameSize; Node 26.12, the first generated token; `node --no-liftoff` given on the
  // command line does not crash). So deopts are turned off with Liftoff; inlining stays on.
  if (V8_MAJOR >= 14) setFlagsFromString('--no-wasm-deopt');
  enableRevectorizer();
}

/** Set to 0 to keep V8's wasm revectorizer off (and so the relaxed kernel build). */
export const REVECTORIZE_ENV = 'LORAFORGE_WASM_REVECTORIZE';

let revectorizing = false;

/**
 * V8 12+ (Node 22+) on x64 can turn pairs of 128-bit wasm SIMD operations into 256-bit AVX2 ones
 * (an experimental flag). V8 reads it once, at the process's first wasm compile, so it is set here
 * and then holds for every module; wide-kernels.ts decides whether the kernels use it.
 */
function enableRevectorizer(): void {
  if (revectorizing || process.arch !== 'x64' || V8_MAJOR < 12) return;
  if (process.env[REVECTORIZE_ENV] === '0') return;
  setFlagsFromString('--experimental-wasm-revectorize');
  revectorizing = true;
}

/** Whether the revectorizer flag was set (it works only if no wasm was compiled before). */
export function isRevectorizing(): boolean {
  return revectorizing;
}

/**
 * Whether `bytes` (a module using relaxed SIMD) compiles on this engine. Node 20 (V8 11) ships
 * relaxed SIMD behind a flag, which is set here; later V8s have it on and no longer know the flag.
 */
export function supportsRelaxedSimd(bytes: Uint8Array<ArrayBuffer>): boolean {
  if (WebAssembly.validate(bytes)) return true;
  if (V8_MAJOR > 11) return false;
  setFlagsFromString('--experimental-wasm-relaxed-simd');
  return WebAssembly.validate(bytes);
}
