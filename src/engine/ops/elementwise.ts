/** Residual add, scaling and the gated-MLP activations. */
import type { GateActivation } from '../backend.ts';
import { record } from '../tape.ts';
import { Tensor } from '../tensor.ts';
import { gemmIntoGrad, gradTarget, kernels } from './util.ts';

export function add(a: Tensor, b: Tensor): Tensor {
  const k = kernels();
  const out = Tensor.empty(a.shape);
  k.add({ a: a.operand(), b: b.operand(), out: out.operand() }, { n: a.size });
  record(out, [a, b], (dy) => {
    for (const t of [a, b]) {
      if (!t.requiresGrad) continue;
      // axpby with beta 0 copies into a fresh gradient, beta 1 accumulates.
      gemmIntoGrad(t, (g, beta) =>
        k.axpby({ x: dy.operand(), y: g.operand() }, { n: t.size, alpha: 1, beta }),
      );
    }
  });
  return out;
}

/** act(gate) · up. */
export function gatedActivation(activation: GateActivation, gate: Tensor, up: Tensor): Tensor {
  const k = kernels();
  const out = Tensor.empty(gate.shape);
  k.gatedForward(
    { gate: gate.operand(), up: up.operand(), out: out.operand() },
    { n: gate.size, activation },
  );
  record(out, [gate, up], (dy) => {
    const dGate = gradTarget(gate);
    const dUp = gradTarget(up);
    k.gatedBackward(
      {
        gate: gate.operand(),
        up: up.operand(),
        dout: dy.operand(),
        dgate: dGate.dst.operand(),
        dup: dUp.dst.operand(),
      },
      { n: gate.size, activation },
    );
    dGate.commit();
    dUp.commit();
  });
  return out;
}

/** silu(gate) · up. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return gatedActivation('silu', gate, up);
}

/** factor · x (Gemma's embedding scale). */
export function scale(x: Tensor, factor: number): Tensor {
  const k = kernels();
  const out = Tensor.empty(x.shape);
  k.axpby({ x: x.operand(), y: out.operand() }, { n: x.size, alpha: factor, beta: 0 });
  record(out, [x], (dy) => {
    gemmIntoGrad(x, (g, beta) =>
      k.axpby({ x: dy.operand(), y: g.operand() }, { n: x.size, alpha: factor, beta }),
    );
  });
  return out;
}
