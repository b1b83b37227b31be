/** The start-up check that decides whether the wide (revectorized) kernel build is used. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { prepareWasmCompiler, supportsRelaxedSimd } from '../../src/engine/cpu/v8-flags.ts';
import { checkWideKernels } from '../../src/engine/cpu/wide-kernels.ts';

const BUILD = join(import.meta.dirname, '..', '..', 'build');
prepareWasmCompiler();
const compile = (name: string) => new WebAssembly.Module(readFileSync(join(BUILD, name)));
assert.ok(supportsRelaxedSimd(new Uint8Array(readFileSync(join(BUILD, 'loraforge-relaxed.wasm')))));
const relaxed = compile('loraforge-relaxed.wasm');

test('a build whose products differ in any bit is refused (SIMD128 multiply-then-add vs fused)', () => {
  const verdict = checkWideKernels(relaxed, compile('loraforge.wasm'));
  assert.equal(verdict.chosen, false);
  assert.match(verdict.reason ?? '', /results differ/);
});

test('a build no faster than the relaxed one is refused', () => {
  // The same build twice: ~1x, far from 1.5x whatever the machine's noise.
  const verdict = checkWideKernels(relaxed, relaxed, 1.5);
  assert.equal(verdict.chosen, false);
  assert.match(verdict.reason ?? '', /only \d\.\d\dx the relaxed build/);
});

test('the wide build multiplies exactly as the relaxed one (6-row tiles, edges, every transpose)', () => {
  const verdict = checkWideKernels(relaxed, compile('loraforge-wide.wasm'));
  // Whether it is chosen depends on V8's revectorizer (Node >= 22 on x64) and the machine's load.
  assert.doesNotMatch(verdict.reason ?? '', /differ/);
});
