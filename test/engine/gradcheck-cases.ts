/**
 * Finite-difference checks of every op's backward: analytic gradients from the engine (f32) against
 * central differences of a float64 reference forward, on odd shapes, with masks and GQA. Shared by
 * the CPU (test/engine/ops-gradcheck.test.ts) and WebGPU (test/webgpu/backend-gradcheck.test.ts)
 * runs: each registers them on the backend it has activated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reference } from './kernel-cases.ts';
import { attention } from '../../src/engine/ops/attention.ts';
import { add, gatedActivation, scale, swiglu } from '../../src/engine/ops/elementwise.ts';
import { embedding } from '../../src/engine/ops/embedding.ts';
import { linear } from '../../src/engine/ops/linear.ts';
import { lmHeadLoss } from '../../src/engine/ops/lm-head-loss.ts';
import { loraLinear } from '../../src/engine/ops/lora-linear.ts';
import { doraLinear } from '../../src/engine/ops/dora-linear.ts';
import { rmsNorm } from '../../src/engine/ops/norm.ts';
import { rope } from '../../src/engine/ops/rope.ts';
import { dequantize, quantize } from '../../src/engine/quant/quantize.ts';
import { QuantizedWeight } from '../../src/engine/quant/quantized-weight.ts';
import { backward } from '../../src/engine/tape.ts';
import { Tensor, tidyAsync } from '../../src/engine/tensor.ts';
import { ropeInverseFrequencies } from '../../src/models/rope-frequencies.ts';
import { Rng } from '../../src/util/rng.ts';

interface Input {
  shape: number[];
  data: Float64Array;
  /** Check the gradient of this input (false: frozen, like base weights). */
  grad: boolean;
}

const rng = new Rng(123);
function randn(shape: number[], scale = 1): Float64Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return Float64Array.from({ length: n }, () => rng.normal(0, scale));
}

/**
 * Compares d(Σ out·R)/d(input) from the engine with central differences of `reference` in float64,
 * at up to `samples` random entries of every input that requires a gradient.
 */
async function gradcheck(
  inputs: Input[],
  engine: (ts: Tensor[]) => Tensor,
  reference: (xs: Float64Array[]) => Float64Array,
  samples = 24,
): Promise<void> {
  await tidyAsync(async () => {
    const tensors = inputs.map((inp) => {
      const t = Tensor.from(Float32Array.from(inp.data), inp.shape);
      t.requiresGrad = inp.grad;
      return t;
    });
    const out = engine(tensors);
    const r = randn([out.size]);
    backward(out, Tensor.from(Float32Array.from(r), out.shape));
    // The f32 inputs are what the engine saw; the reference starts from the same values.
    const xs = inputs.map((inp) => Float64Array.from(Float32Array.from(inp.data)));
    const objective = () => reference(xs).reduce((s, y, i) => s + y * r[i]!, 0);
    for (const [which, inp] of inputs.entries()) {
      if (!inp.grad) continue;
      const analytic = await tensors[which]!.grad!.toFloat32();
      const x = xs[which]!;
      for (let s = 0; s < Math.min(samples, x.length); s++) {
        const i = samples >= x.length ? s : rng.int(0, x.length - 1);
        const h = 1e-5 * Math.max(1, Math.abs(x[i]!));
        const keep = x[i]!;
        x[i] = keep + h;
        const up = objective();
        x[i] = keep - h;
        const down = objective();
        x[i] = keep;
        const numeric = (up - down) / (2 * h);
        const err = Math.abs(analytic[i]! - numeric);
        assert.ok(
          err <= 2e-4 + 2e-3 * Math.abs(numeric),
          `input ${which}[${i}]: analytic ${analytic[i]} vs numeric ${numeric}`,
        );
      }
    }
  });
}

function matmulT(
  x: Float64Array,
  w: Float64Array,
  rows: number,
  inF: number,
  outF: number,
): Float64Array {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < outF; o++) {
      let s = 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i]! * w[o * inF + i]!;
      y[r * outF + o] = s;
    }
  return y;
}

/** [cols, rows] from [rows, cols]. */
function transpose(x: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]!;
  return out;
}

/** x·Wᵀ + b + s·((mask ⊙ x)·Aᵀ)·Bᵀ in float64: LoRA linear with its dropout mask. */
function loraReference(
  [x, w, b, a, bb]: Float64Array[],
  mask: Float64Array,
  [rows, inF, outF, r]: number[],
  s: number,
): Float64Array {
  const base = matmulT(x!, w!, rows!, inF!, outF!);
  const xa = matmulT(
    x!.map((v, i) => v * mask[i]!),
    a!,
    rows!,
    inF!,
    r!,
  );
  const delta = matmulT(xa, bb!, rows!, r!, outF!);
  return base.map((v, i) => v + b![i % outF!]! + s * delta[i]!);
}

function crossEntropyReference(
  h: Float64Array,
  table: Float64Array,
  targets: Int32Array,
  dim: number,
  vocab: number,
): Float64Array {
  let total = 0;
  let count = 0;
  targets.forEach((t, row) => {
    if (t === -100) return;
    const logits = Array.from({ length: vocab }, (_, v) => {
      let s = 0;
      for (let d = 0; d < dim; d++) s += h[row * dim + d]! * table[v * dim + d]!;
      return s;
    });
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((a, l) => a + Math.exp(l - max), 0));
    total += lse - logits[t]!;
    count++;
  });
  return Float64Array.of(total / count);
}

/**
 * Registers every op's check as a test of the backend that is active when the tests run;
 * `skip` (a reason) skips them all.
 */
export function registerGradchecks(skip: string | false = false): void {
  test('linear: x, W and bias gradients', { skip }, async () => {
    const [rows, inF, outF] = [5, 7, 3];
    await gradcheck(
      [
        { shape: [rows, inF], data: randn([rows, inF]), grad: true },
        { shape: [outF, inF], data: randn([outF, inF]), grad: true },
        { shape: [outF], data: randn([outF]), grad: true },
      ],
      ([x, w, b]) => linear(x!, w!, b!),
      ([x, w, b]) => matmulT(x!, w!, rows, inF, outF).map((v, i) => v + b![i % outF]!),
    );
  });

  test('LoRA linear: x, A and B gradients with frozen W, bias and dropout', { skip }, async () => {
    const [rows, inF, outF, r, s] = [6, 9, 5, 3, 1.7];
    const dropout = { p: 0.3, seed: 2024 };
    // The mask the kernels draw from the seed, as the float64 reference computes it.
    const mask = new Float64Array(rows * inF);
    reference(
      'dropout',
      { x: new Float64Array(rows * inF).fill(1), out: mask },
      { n: mask.length, ...dropout },
    );
    assert.ok(mask.includes(0) && mask.some((v) => v > 1), 'some elements dropped, some kept');
    await gradcheck(
      [
        { shape: [rows, inF], data: randn([rows, inF]), grad: true },
        { shape: [outF, inF], data: randn([outF, inF]), grad: false },
        { shape: [outF], data: randn([outF]), grad: false },
        { shape: [r, inF], data: randn([r, inF]), grad: true },
        { shape: [outF, r], data: randn([outF, r]), grad: true },
      ],
      ([x, w, b, a, bb]) => loraLinear(x!, w!, b!, { a: a!, b: bb!, scale: s }, dropout),
      ([x, w, b, a, bb]) => loraReference([x!, w!, b!, a!, bb!], mask, [rows, inF, outF, r], s),
    );
  });

  for (const dropout of [null, { p: 0.25, seed: 77 }]) {
    test(
      `DoRA linear: x, bias, A, B and magnitude gradients, norm detached (dropout ${dropout?.p ?? 0})`,
      { skip },
      async () => {
        const [rows, inF, outF, r, s] = [5, 8, 6, 3, 1.3];
        const mask = new Float64Array(rows * inF).fill(1);
        if (dropout)
          reference('dropout', { x: mask.slice(), out: mask }, { n: mask.length, ...dropout });
        const init = {
          w: randn([outF, inF]),
          a: randn([r, inF], 0.5),
          b: randn([outF, r], 0.5),
        };
        // PEFT detaches ‖W + s·B·A‖: the reference keeps the norm of the unperturbed weights.
        const v = matmulT(
          init.b.map((x) => x * s),
          transpose(init.a, r, inF),
          outF,
          r,
          inF,
        );
        const norms = Float64Array.from({ length: outF }, (_, o) => {
          let sq = 0;
          for (let i = 0; i < inF; i++) sq += (init.w[o * inF + i]! + v[o * inF + i]!) ** 2;
          return Math.sqrt(sq);
        });
        await gradcheck(
          [
            { shape: [rows, inF], data: randn([rows, inF]), grad: true },
            { shape: [outF, inF], data: init.w, grad: false },
            { shape: [outF], data: randn([outF]), grad: true },
            { shape: [r, inF], data: init.a, grad: true },
            { shape: [outF, r], data: init.b, grad: true },
            { shape: [outF], data: norms.map((n) => n * (1 + 0.3 * rng.normal(0, 1))), grad: true },
          ],
          ([x, w, b, a, bb, m]) =>
            doraLinear(x!, w!, b!, { a: a!, b: bb!, scale: s, magnitude: m! }, dropout),
          ([x, w, b, a, bb, m]) => {
            const xd = x!.map((val, i) => val * mask[i]!);
            const base = matmulT(x!, w!, rows, inF, outF);
            const u = matmulT(xd, w!, rows, inF, outF);
            const l = matmulT(matmulT(xd, a!, rows, inF, r), bb!, rows, r, outF);
            return base.map((val, i) => {
              const g = m![i % outF]! / norms[i % outF]!;
              return val + b![i % outF]! + (g - 1) * u[i]! + g * s * l[i]!;
            });
          },
        );
      },
    );
  }

  test(
    'LoRA linear on blocks of a fused matrix: W, b, A and B gradients land in place',
    { skip },
    async () => {
      // Phi-3's qkv_proj: rows [0, 4) and [4, 6) of one W, b and B, with one A, summed so that
      // both blocks' gradients accumulate (W trained too, as full fine-tuning does).
      const [rows, inF, outF, r, s] = [5, 7, 6, 3, 0.9];
      const blocks = [
        { offset: 0, count: 2 },
        { offset: 4, count: 2 },
      ];
      const dropout = { p: 0.25, seed: 77 };
      const mask = new Float64Array(rows * inF);
      reference(
        'dropout',
        { x: new Float64Array(rows * inF).fill(1), out: mask },
        { n: mask.length, ...dropout },
      );
      await gradcheck(
        [
          { shape: [rows, inF], data: randn([rows, inF]), grad: true },
          { shape: [outF, inF], data: randn([outF, inF]), grad: true },
          { shape: [outF], data: randn([outF]), grad: true },
          { shape: [r, inF], data: randn([r, inF]), grad: true },
          { shape: [outF, r], data: randn([outF, r]), grad: true },
        ],
        ([x, w, b, a, bb]) => {
          const [first, second] = blocks.map((block) =>
            loraLinear(x!, w!, b!, { a: a!, b: bb!, scale: s }, dropout, block),
          );
          return add(first!, scale(second!, -2));
        },
        ([x, w, b, a, bb]) => {
          const y = loraReference([x!, w!, b!, a!, bb!], mask, [rows, inF, outF, r], s);
          return Float64Array.from({ length: rows * 2 }, (_, i) => {
            const [row, o] = [Math.floor(i / 2), i % 2];
            return y[row * outF + o]! - 2 * y[row * outF + 4 + o]!;
          });
        },
      );
    },
  );

  // 5 rows of x: the forward reads the codes directly; 11: tile by tile, as dx always does.
  for (const [type, rows] of [
    ['nf4', 5],
    ['nf4', 11],
    ['int8', 11],
  ] as const) {
    test(
      `LoRA linear on a block of a ${type} W, ${rows} rows of x, tiles of 2 rows`,
      { skip },
      async () => {
        // 70 inputs: 4-bit blocks straddle rows; rows [1, 6) of W: tiles of 2, 2 and 1 rows.
        const [inF, outF, r, s] = [70, 7, 3, 1.1];
        const block = { offset: 1, count: 5 };
        const q = quantize(Float32Array.from(randn([outF, inF], 0.1)), [outF, inF], type, {
          doubleQuant: type === 'nf4',
        });
        const w = Float64Array.from(dequantize(q));
        const quantized = QuantizedWeight.upload(q);
        quantized.tileRows = 2;
        const mask = new Float64Array(rows * inF).fill(1);
        try {
          await gradcheck(
            [
              { shape: [rows, inF], data: randn([rows, inF]), grad: true },
              { shape: [outF], data: randn([outF]), grad: false },
              { shape: [r, inF], data: randn([r, inF]), grad: true },
              { shape: [outF, r], data: randn([outF, r]), grad: true },
            ],
            ([x, b, a, bb]) =>
              loraLinear(x!, quantized, b!, { a: a!, b: bb!, scale: s }, null, block),
            ([x, b, a, bb]) => {
              const y = loraReference([x!, w, b!, a!, bb!], mask, [rows, inF, outF, r], s);
              return Float64Array.from({ length: rows * block.count }, (_, i) => {
                const [row, o] = [Math.floor(i / block.count), i % block.count];
                return y[row * outF + block.offset + o]!;
              });
            },
          );
        } finally {
          quantized.dispose();
        }
      },
    );
  }

  test('embedding: table gradient with repeated ids', { skip }, async () => {
    const ids = Int32Array.from([3, 1, 3, 0, 4]);
    const dim = 6;
    await gradcheck(
      [{ shape: [5, dim], data: randn([5, dim]), grad: true }],
      ([table]) => embedding(table!, Tensor.from(ids, [ids.length], 'i32')),
      ([table]) =>
        Float64Array.from(
          { length: ids.length * dim },
          (_, i) => table![ids[Math.floor(i / dim)]! * dim + (i % dim)]!,
        ),
    );
  });

  test(
    'per-head q/k norm: RMSNorm over each head, weight (1 + w) shared by the heads',
    { skip },
    async () => {
      // Qwen3 normalises [tokens, heads·headDim] per head with one [headDim] weight; Gemma scales by 1 + w.
      const [rows, heads, headDim, eps] = [3, 4, 6, 1e-6];
      const ones = new Float64Array(headDim).fill(1);
      await gradcheck(
        [
          { shape: [rows, heads * headDim], data: randn([rows, heads * headDim]), grad: true },
          { shape: [headDim], data: randn([headDim], 0.1), grad: true },
          { shape: [headDim], data: ones, grad: false },
        ],
        ([x, w, one]) => rmsNorm(x!, add(w!, one!), eps),
        ([x, w]) => {
          const out = new Float64Array(rows * heads * headDim);
          reference(
            'rmsnormForward',
            { x: x!, w: w!.map((v) => 1 + v), out, rstd: null },
            { rows: rows * heads, dim: headDim, eps },
          );
          return out;
        },
      );
    },
  );

  test('RMSNorm: x and weight gradients', { skip }, async () => {
    const [rows, dim, eps] = [5, 13, 1e-6];
    await gradcheck(
      [
        { shape: [rows, dim], data: randn([rows, dim]), grad: true },
        { shape: [dim], data: randn([dim]).map((v) => 1 + 0.1 * v), grad: true },
      ],
      ([x, w]) => rmsNorm(x!, w!, eps),
      ([x, w]) => {
        const out = new Float64Array(rows * dim);
        reference('rmsnormForward', { x: x!, w: w!, out, rstd: null }, { rows, dim, eps });
        return out;
      },
    );
  });

  // The default table, and a llama3-scaled one whose 4 pairs fall in all three bands (kept,
  // blended, divided by the factor) for theta 10000, headDim 8.
  const ropeTables = {
    default: ropeInverseFrequencies(8, 10000, null),
    llama3: ropeInverseFrequencies(8, 10000, {
      type: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 1024,
    }),
  };
  // Phi-3: RoPE on the first 6 of 8 values of each head, cos and sin times an attention factor.
  const partial = ropeInverseFrequencies(6, 10000, null);
  for (const [name, table, scale] of [
    ...Object.entries(ropeTables).map(([name, t]) => [name, t, 1] as const),
    ['partial, scaled', partial, 1.3] as const,
  ]) {
    test(`RoPE (${name} frequencies): gradient through the rotation`, { skip }, async () => {
      const [batch, seq, heads, headDim] = [2, 3, 3, 8];
      const positions = Int32Array.from([0, 5, 2, 7, 1, 3000]);
      await gradcheck(
        [
          {
            shape: [batch * seq, heads * headDim],
            data: randn([batch * seq, heads * headDim]),
            grad: true,
          },
        ],
        ([x]) =>
          rope(
            x!,
            Tensor.from(positions, [positions.length], 'i32'),
            Tensor.from(table, [table.length]),
            batch,
            seq,
            heads,
            headDim,
            scale,
          ),
        ([x]) => {
          const out = new Float64Array(x!.length);
          const rotaryDim = table.length * 2;
          reference(
            'ropeApply',
            { x: x!, out, positions, invFreq: table },
            { B: batch, T: seq, H: heads, D: headDim, inverse: false, rotaryDim, scale },
          );
          return out;
        },
      );
    });
  }

  // window 3 < seq: a sliding-window layer (Gemma 3, Mistral), with a score scale of its own.
  for (const window of [0, 3]) {
    test(
      `attention: q, k, v gradients with GQA, key padding and packed documents (window ${window})`,
      { skip },
      async () => {
        const [batch, seq, heads, kvHeads, headDim] = [2, 7, 4, 2, 6];
        const attnScale = window ? 0.3 : 1 / Math.sqrt(headDim);
        const mask = Int32Array.from({ length: batch * seq }, (_, i) => (i >= seq + 5 ? 0 : 1));
        const segments = Int32Array.from({ length: batch * seq }, (_, i) => (i % seq < 3 ? 1 : 2));
        const shape = { batch, seq, heads, kvHeads, headDim, scale: attnScale, window };
        await gradcheck(
          [
            {
              shape: [batch * seq, heads * headDim],
              data: randn([batch * seq, heads * headDim]),
              grad: true,
            },
            {
              shape: [batch * seq, kvHeads * headDim],
              data: randn([batch * seq, kvHeads * headDim]),
              grad: true,
            },
            {
              shape: [batch * seq, kvHeads * headDim],
              data: randn([batch * seq, kvHeads * headDim]),
              grad: true,
            },
          ],
          ([q, k, v]) =>
            attention(
              q!,
              k!,
              v!,
              shape,
              Tensor.from(mask, [mask.length], 'i32'),
              Tensor.from(segments, [segments.length], 'i32'),
            ),
          ([q, k, v]) => {
            const out = new Float64Array(q!.length);
            const lse = new Float64Array(batch * heads * seq);
            reference(
              'attentionForward',
              { q: q!, k: k!, v: v!, out, lse, keyMask: mask, segIds: segments },
              {
                B: batch,
                Tq: seq,
                Tk: seq,
                kvCap: seq,
                H: heads,
                KVH: kvHeads,
                D: headDim,
                scale: attnScale,
                window,
              },
            );
            return out;
          },
          40,
        );
      },
    );
  }

  test('SwiGLU and residual add', { skip }, async () => {
    const n = 11;
    await gradcheck(
      [
        { shape: [n], data: randn([n], 2), grad: true },
        { shape: [n], data: randn([n]), grad: true },
      ],
      ([g, u]) => add(swiglu(g!, u!), u!),
      ([g, u]) => {
        const out = new Float64Array(n);
        reference('gatedForward', { gate: g!, up: u!, out }, { n, activation: 'silu' });
        return out.map((v, i) => v + u![i]!);
      },
    );
  });

  test('GELU-tanh gate (Gemma) and Gemma-style embedding scale', { skip }, async () => {
    const n = 11;
    await gradcheck(
      [
        { shape: [n], data: randn([n], 2), grad: true },
        { shape: [n], data: randn([n]), grad: true },
      ],
      ([g, u]) => scale(gatedActivation('gelu_tanh', g!, u!), 1.5),
      ([g, u]) => {
        const out = new Float64Array(n);
        reference('gatedForward', { gate: g!, up: u!, out }, { n, activation: 'gelu_tanh' });
        return out.map((v) => 1.5 * v);
      },
    );
  });

  test(
    'fused LM-head loss: hidden-state gradient with a frozen head (online softmax path)',
    { skip },
    async () => {
      const [rows, dim, vocab] = [6, 5, 700];
      const targets = Int32Array.from([5, -100, 699, 0, -100, 311]);
      await gradcheck(
        [
          { shape: [rows, dim], data: randn([rows, dim]), grad: true },
          { shape: [vocab, dim], data: randn([vocab, dim]), grad: false },
        ],
        // 128-entry chunks: the running max moves between chunks, exercising the rescaling.
        ([h, table]) => lmHeadLoss(h!, table!, targets, { chunkSize: 128 }).loss,
        ([h, table]) => crossEntropyReference(h!, table!, targets, dim, vocab),
      );
    },
  );

  test(
    'fused LM-head loss: hidden and head gradients when the head trains (tied embeddings)',
    { skip },
    async () => {
      const [rows, dim, vocab] = [4, 3, 300];
      const targets = Int32Array.from([7, 299, -100, 150]);
      await gradcheck(
        [
          { shape: [rows, dim], data: randn([rows, dim]), grad: true },
          { shape: [vocab, dim], data: randn([vocab, dim]), grad: true },
        ],
        ([h, table]) => lmHeadLoss(h!, table!, targets, { chunkSize: 64 }).loss,
        ([h, table]) => crossEntropyReference(h!, table!, targets, dim, vocab),
      );
    },
  );
}
