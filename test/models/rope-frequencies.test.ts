/**
 * RoPE inverse-frequency tables against a float64 reimplementation of transformers' formulas
 * (default, linear, llama3, longrope), and against values worked out by hand.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDecoderConfig } from '../../src/models/config.ts';
import {
  defaultInverseFrequencies,
  ropeInverseFrequencies,
  ropeTables,
  tableFor,
  type RopeScaling,
} from '../../src/models/rope-frequencies.ts';

/** transformers' inv_freq in float64 (no float32 rounding anywhere). */
function reference(headDim: number, theta: number, scaling: RopeScaling | null): number[] {
  const base = Array.from({ length: headDim / 2 }, (_, j) => 1 / theta ** ((2 * j) / headDim));
  if (!scaling) return base;
  if (scaling.type === 'linear') return base.map((v) => v / scaling.factor);
  if (scaling.type === 'longrope') return base.map((v, j) => v / scaling.shortFactor[j]!);
  const { factor, lowFreqFactor: low, highFreqFactor: high } = scaling;
  const old = scaling.originalMaxPositionEmbeddings;
  return base.map((v) => {
    const wavelen = (2 * Math.PI) / v;
    if (wavelen < old / high) return v;
    if (wavelen > old / low) return v / factor;
    const smooth = (old / wavelen - low) / (high - low);
    return ((1 - smooth) * v) / factor + smooth * v;
  });
}

/** Largest relative difference. */
function maxRelDiff(actual: ArrayLike<number>, expected: number[]): number {
  return expected.reduce((m, e, i) => Math.max(m, Math.abs(actual[i]! - e) / Math.abs(e)), 0);
}

/** Llama-3.2-1B/3B: rope_theta 500000, head_dim 64. */
const LLAMA32: RopeScaling = {
  type: 'llama3',
  factor: 32,
  lowFreqFactor: 1,
  highFreqFactor: 4,
  originalMaxPositionEmbeddings: 8192,
};
/** Llama-3.1-8B: rope_theta 500000, head_dim 128. */
const LLAMA31: RopeScaling = { ...LLAMA32, factor: 8 };

test('llama3 tables match the float64 formulas to float32 precision', () => {
  for (const [headDim, scaling] of [
    [64, LLAMA32],
    [128, LLAMA31],
  ] as const) {
    const table = ropeInverseFrequencies(headDim, 500000, scaling);
    assert.equal(table.length, headDim / 2);
    const diff = maxRelDiff(table, reference(headDim, 500000, scaling));
    assert.ok(diff < 1e-6, `headDim ${headDim}: max relative difference ${diff}`);
    // Far from the float64 table of the unscaled RoPE: the scaling did something.
    assert.ok(maxRelDiff(table, reference(headDim, 500000, null)) > 0.8);
  }
});

test('llama3 on Llama 3.2: pairs 0-14 kept, 15-17 blended, 18-31 divided by 32', () => {
  // wavelen_j = 2π · 500000^(j/32); kept below 8192/4 = 2048 (j <= 14, wavelen 1956 at j = 14),
  // divided above 8192/1 (j >= 18, wavelen 10089 at j = 18), blended in between.
  const table = ropeInverseFrequencies(64, 500000, LLAMA32);
  const plain = defaultInverseFrequencies(64, 500000);
  for (let j = 0; j < 32; j++) {
    if (j <= 14) assert.equal(table[j], plain[j], `pair ${j} kept`);
    else if (j >= 18)
      assert.equal(table[j], plain[j]! / 32, `pair ${j} divided`); // exact: 2^-5
    else {
      assert.ok(table[j]! < plain[j]! && table[j]! > plain[j]! / 32, `pair ${j} blended`);
    }
  }
  assert.equal(table[0], 1);
  // Pair 16 by hand: inv = 500000^-1/2 = 1.41421356e-3, wavelen = 2π/inv = 4442.8829,
  // smooth = (8192/4442.8829 - 1) / 3 = 0.2812826, inv · ((1 - smooth)/32 + smooth) = 4.2955680e-4.
  const inv = 1 / Math.sqrt(500000);
  const smooth = (8192 / ((2 * Math.PI) / inv) - 1) / 3;
  assert.ok(Math.abs(smooth - 0.2812826) < 1e-7);
  const byHand = inv * ((1 - smooth) / 32 + smooth);
  assert.ok(Math.abs(byHand - 4.295568e-4) < 1e-10);
  assert.ok(Math.abs(table[16]! - byHand) / byHand < 1e-6, `pair 16: ${table[16]}`);
  // The float32 values transformers computes (each torch float32 operation replayed in NumPy).
  assert.equal(table[15], 0.0012905480107292533);
  assert.equal(table[16], 0.000429556705057621);
  assert.equal(table[17], 9.708286233944818e-5);
  assert.equal(table[31], 9.418306490260875e-8);
});

test('linear scaling divides every frequency by the factor', () => {
  const table = ropeInverseFrequencies(64, 10000, { type: 'linear', factor: 4 });
  const plain = defaultInverseFrequencies(64, 10000);
  for (let j = 0; j < 32; j++) assert.equal(table[j], plain[j]! / 4);
  assert.equal(table[0], 0.25);
  assert.equal(table[8], Math.fround(0.1) / 4); // 10000^(-16/64) = 0.1
  const diff = maxRelDiff(table, reference(64, 10000, { type: 'linear', factor: 4 }));
  assert.ok(diff < 1e-6, `max relative difference ${diff}`);
  // A factor that is not a power of two still rounds each quotient once.
  const odd = ropeInverseFrequencies(64, 10000, { type: 'linear', factor: 3 });
  for (let j = 0; j < 32; j++) assert.equal(odd[j], Math.fround(plain[j]! / 3));
});

test('the default table is the float32 one transformers computes', () => {
  const table = ropeInverseFrequencies(64, 1e6, null);
  assert.deepEqual(table, defaultInverseFrequencies(64, 1e6));
  // f32(1 / f32(1e6 ** f32(2/64))), not the float64 0.6493816315762113.
  assert.equal(table[1], 0.6493816375732422);
  const diff = maxRelDiff(table, reference(64, 1e6, null));
  assert.ok(diff < 1e-6, `max relative difference ${diff}`);
});

test('longrope: short factors up to original_max_position_embeddings, long ones past it', () => {
  const shortFactor = [1, 1.25, 1.5, 2, 3, 4.5];
  const longFactor = [1.5, 2.5, 4, 8, 16, 32];
  const scaling: RopeScaling = {
    type: 'longrope',
    shortFactor,
    longFactor,
    originalMaxPositionEmbeddings: 20,
    attentionFactor: 1.25,
  };
  const tables = ropeTables(12, 10000, scaling);
  const diff = maxRelDiff(tables.invFreq, reference(12, 10000, scaling));
  assert.ok(diff < 1e-6, `max relative difference ${diff}`);
  // 1 / f32(ext · f32(theta^(2j/D))): pair 1 of the long table, rounded as torch does.
  const power = Math.fround(Math.pow(10000, Math.fround(2 / 12)));
  assert.equal(tables.long!.invFreq[1], Math.fround(1 / Math.fround(2.5 * power)));
  assert.equal(tables.scale, 1.25);
  // transformers picks the table per forward pass from its largest position: seq_len > original.
  assert.equal(tableFor(tables, 19), tables.invFreq);
  assert.equal(tableFor(tables, 20), tables.long!.invFreq);
  assert.equal(ropeTables(12, 10000, null).long, null);
});

test('longrope config: attention factor from max / original max, as Phi3Config gives it', () => {
  const c = parseDecoderConfig({
    architectures: ['Phi3ForCausalLM'],
    vocab_size: 10,
    hidden_size: 64,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    max_position_embeddings: 131072,
    original_max_position_embeddings: 4096,
    partial_rotary_factor: 0.75,
    rope_scaling: {
      type: 'longrope',
      short_factor: [1, 1, 1, 1, 1, 1],
      long_factor: [2, 2, 2, 2, 2, 2],
    },
  });
  assert.equal(c.rotaryDim, 12);
  assert.ok(c.ropeScaling?.type === 'longrope');
  // Phi-3.5-mini / Phi-4-mini: √(1 + ln 32 / ln 4096) = 1.1902380714238083.
  assert.equal(c.ropeScaling.attentionFactor, Math.sqrt(1 + Math.log(32) / Math.log(4096)));
  assert.equal(c.ropeScaling.originalMaxPositionEmbeddings, 4096);
});
