/**
 * What limits a CPU benchmark: the matrix-product flops a step needs, and the most the wasm
 * SIMD multiply-add units of this machine can deliver (measured, not assumed).
 */
import type { WasmRuntime } from '../src/engine/cpu/runtime.ts';
import type { DecoderConfig } from '../src/models/config.ts';
import { projectionShapes } from '../src/models/shapes.ts';

/**
 * GFLOP/s of the wasm module's register-only multiply-add loop on one thread: what the CPU's
 * 128-bit FMA units deliver to this code at the clock it runs at now, the ceiling for any GEMM
 * built on wasm SIMD here. Measured in CPU time, so competing processes do not lower it.
 */
export function fmaCeilingGflops(rt: WasmRuntime): number {
  const fmaPeak = rt.exports.fmaPeak as (iterations: number, x: number, y: number) => number;
  const flopsPerIteration = Number(rt.exports.fmaPeakFlopsPerIteration());
  const iterations = 5_000_000;
  fmaPeak(iterations, 0.5, 1e-3);
  let best = 0;
  for (let run = 0; run < 3; run++) {
    const start = process.cpuUsage();
    fmaPeak(iterations, 0.5, 1e-3);
    const cpu = process.cpuUsage(start);
    best = Math.max(best, (iterations * flopsPerIteration) / ((cpu.user + cpu.system) / 1e6) / 1e9);
  }
  return best;
}

export interface LoraStepShape {
  batch: number;
  seq: number;
  /** Positions whose next-token loss is computed (the LM head runs on these rows only). */
  supervisedRows: number;
  rank: number;
}

/**
 * Flops of the matrix products in one LoRA step (forward + backward, adapters on all seven
 * projections, frozen weights and LM head): projections forward and their input gradients, the
 * LoRA products (x·Aᵀ, ·Bᵀ, and their 4 backward products), attention scores and values
 * (causal: half the square; forward 2 products, backward 4 with the score recomputation 5),
 * and the fused LM head on supervised rows (logits, then dL/dh).
 */
export function loraStepFlops(c: DecoderConfig, s: LoraStepShape): Record<string, number> {
  const tokens = s.batch * s.seq;
  let projections = 0;
  let lora = 0;
  for (const [out, inp] of projectionShapes(c).values()) {
    projections += 2 * 2 * tokens * out * inp;
    lora += 2 * tokens * s.rank * (3 * inp + 3 * out);
  }
  const causalPairs = (s.batch * s.seq * (s.seq + 1)) / 2;
  const attention = (2 + 5) * 2 * causalPairs * c.numHeads * c.headDim;
  const lmHead = 2 * 2 * s.supervisedRows * c.vocabSize * c.hiddenSize;
  const layers = c.numLayers;
  return {
    projections: projections * layers,
    lora: lora * layers,
    attention: attention * layers,
    lmHead,
    total: (projections + lora + attention) * layers + lmHead,
  };
}
