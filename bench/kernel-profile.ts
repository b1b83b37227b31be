/**
 * Where a CPU backend's time goes, per kernel class: wraps every entry of `backend.kernels` with
 * a wall-clock timer (CPU kernels run synchronously, so a call's time is its kernel, its launch
 * and its JavaScript dispatch). GEMM calls are told apart by shape (m × n × k, + bias), so that a
 * decode step shows each projection and the LM head. What no kernel accounts for is the caller's
 * own JavaScript (ops, tensors, sampling): `otherMs`.
 */
import type { Backend, GemmOptions, Kernels } from '../src/engine/backend.ts';

export interface KernelClassTime {
  name: string;
  /** Milliseconds per step (summed over the step's calls). */
  msPerStep: number;
  callsPerStep: number;
  microsecondsPerCall: number;
}

export interface KernelProfile {
  msPerStep: number;
  kernelMsPerStep: number;
  /** Time outside every kernel call (ops, tensor bookkeeping, logits read-back, sampling). */
  otherMsPerStep: number;
  classes: KernelClassTime[];
}

type AnyKernel = (...args: unknown[]) => unknown;

function className(name: string, args: unknown[]): string {
  if (name !== 'gemm') return name;
  const o = args[3] as GemmOptions;
  return `gemm ${o.m}x${o.n}x${o.k}${o.bias ? ' +bias' : ''}`;
}

/** Runs `steps` calls of `step` with every kernel of `backend` timed, then unwraps them. */
export async function profileKernels(
  backend: Backend,
  steps: number,
  step: () => Promise<unknown>,
): Promise<KernelProfile> {
  const kernels = backend.kernels as unknown as Record<string, AnyKernel>;
  const totals = new Map<string, { ms: number; calls: number }>();
  const originals = new Map<string, AnyKernel>();
  const inherited = new Set<string>(); // methods (CpuGemm's gemm): unwrapped by deleting the wrapper
  const names = new Set([...Object.keys(kernels), 'gemm' satisfies keyof Kernels]);
  for (const name of names) {
    const kernel = kernels[name];
    if (typeof kernel !== 'function') continue;
    originals.set(name, kernel);
    if (!Object.hasOwn(kernels, name)) inherited.add(name);
    kernels[name] = (...args: unknown[]) => {
      const start = performance.now();
      const result = kernel.apply(kernels, args);
      const key = className(name, args);
      const total = totals.get(key) ?? { ms: 0, calls: 0 };
      total.ms += performance.now() - start;
      total.calls++;
      totals.set(key, total);
      return result;
    };
  }
  const start = performance.now();
  try {
    for (let i = 0; i < steps; i++) await step();
  } finally {
    for (const [name, kernel] of originals) {
      if (inherited.has(name)) delete kernels[name];
      else kernels[name] = kernel;
    }
  }
  const msPerStep = (performance.now() - start) / steps;
  const classes = [...totals]
    .map(([name, { ms, calls }]) => ({
      name,
      msPerStep: ms / steps,
      callsPerStep: calls / steps,
      microsecondsPerCall: (1000 * ms) / calls,
    }))
    .sort((a, b) => b.msPerStep - a.msPerStep);
  const kernelMsPerStep = classes.reduce((sum, c) => sum + c.msPerStep, 0);
  return { msPerStep, kernelMsPerStep, otherMsPerStep: msPerStep - kernelMsPerStep, classes };
}

/** The profile as lines of text. */
export function formatProfile(label: string, p: KernelProfile): string[] {
  const lines = [
    `${label}: ${p.msPerStep.toFixed(2)} ms per step = kernels ${p.kernelMsPerStep.toFixed(2)} ms + other JavaScript ${p.otherMsPerStep.toFixed(2)} ms`,
  ];
  for (const c of p.classes) {
    lines.push(
      `  ${c.name.padEnd(26)} ${c.msPerStep.toFixed(3).padStart(8)} ms  ${c.callsPerStep.toFixed(0).padStart(4)} calls  ${c.microsecondsPerCall.toFixed(1).padStart(8)} µs/call`,
    );
  }
  return lines;
}
