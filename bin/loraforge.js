#!/usr/bin/env node
// Relaxed SIMD (fused multiply-add) is behind a flag on Node 20; it must be set before any wasm
// is compiled. tsx runs the TypeScript sources directly.
import { setFlagsFromString } from 'node:v8';
import { register } from 'tsx/esm/api';

setFlagsFromString('--experimental-wasm-relaxed-simd');
register();
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
