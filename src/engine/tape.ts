/**
 * Reverse-mode autograd on a flat tape. An op records its backward closure only when one of its
 * inputs requires a gradient, so a frozen base model costs nothing on the tape and only the paths
 * that lead to trainable parameters are differentiated.
 */
import { Tensor, tidy } from './tensor.ts';

interface Entry {
  output: Tensor;
  backward: (gradOutput: Tensor) => void;
}

let tape: Entry[] = [];
let gradEnabled = true;

/** True if any input needs a gradient and recording is on. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/** Registers `backward` for `output` if any input requires grad. */
export function record(
  output: Tensor,
  inputs: (Tensor | null | undefined)[],
  backward: (gradOutput: Tensor) => void,
): void {
  if (!needsGrad(...inputs)) return;
  output.requiresGrad = true;
  tape.push({ output, backward });
}

/** Runs `fn` without recording (inference). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/**
 * The gradient buffer of `t` to write into. `fresh` means it was just allocated and holds garbage:
 * the caller must overwrite all of it (beta = 0) instead of accumulating.
 */
export function gradSlot(t: Tensor): { grad: Tensor; fresh: boolean } {
  if (t.grad) return { grad: t.grad, fresh: false };
  // Owned by `t` (disposed with it), not by whatever scope is open: backward closures run in
  // their own short scopes so their temporaries die at once.
  const grad = Tensor.empty(t.shape, 'f32').keep();
  t.grad = grad;
  return { grad, fresh: true };
}

/**
 * Back-propagates from `output` and clears the tape. `seed` is dLoss/dOutput: a number fills it
 * (1 for a scalar loss), a tensor of output's shape gives it element by element.
 */
export function backward(output: Tensor, seed: number | Tensor = 1): void {
  try {
    propagate(tape, output, seed);
  } finally {
    clearTape();
  }
}

/** Seeds output's gradient and runs `entries`' backward closures, last first. */
function propagate(entries: Entry[], output: Tensor, seed: number | Tensor): void {
  const { grad } = gradSlot(output);
  const k = output.backend.kernels;
  if (typeof seed === 'number') k.fill({ x: grad.operand() }, { n: grad.size, value: seed });
  else k.axpby({ x: seed.operand(), y: grad.operand() }, { n: grad.size, alpha: 1, beta: 0 });
  for (let i = entries.length - 1; i >= 0; i--) {
    const { output, backward: run } = entries[i]!;
    const grad = output.grad;
    if (!grad || output.isDisposed) continue;
    tidy(() => run(grad));
    // An op output's gradient is consumed once its producer has back-propagated it.
    grad.dispose();
    output.grad = null;
  }
}

/**
 * Gradient checkpointing: y = fn(x) keeping none of fn's activations. The forward runs recording
 * on a tape of its own that is dropped (so ops behave as in training: dropout, gradients wanted)
 * and its intermediates are freed; the backward pass runs fn again on x, on another tape of its
 * own, and back-propagates dy through it into x and every parameter fn uses. `params` are those
 * parameters (whether fn needs recording at all). fn must compute the same thing both times
 * (`recompute` says which run it is: a caller replays its random draws).
 */
export function checkpoint(
  x: Tensor,
  params: readonly Tensor[],
  fn: (x: Tensor, recompute: boolean) => Tensor,
): Tensor {
  if (!needsGrad(x, ...params)) return fn(x, false);
  const y = tidy(() => ownTape(() => fn(x, false)).result);
  record(y, [x, ...params], (dy) => {
    const { result, entries } = ownTape(() => fn(x, true));
    propagate(entries, result, dy);
  });
  return y;
}

/** Runs `fn` recording on a fresh tape, which it returns; the outer tape is left as it was. */
function ownTape<T>(fn: () => T): { result: T; entries: Entry[] } {
  const outer = tape;
  tape = [];
  try {
    const result = fn();
    return { result, entries: tape };
  } finally {
    tape = outer;
  }
}

export function clearTape(): void {
  tape = [];
}

export function tapeLength(): number {
  return tape.length;
}
