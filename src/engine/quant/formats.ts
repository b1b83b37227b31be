/**
 * The quantization formats of bitsandbytes (the QLoRA paper's NF4, its FP4, and LLM.int8's row-wise
 * int8 weights), as data: each format is a code table (bnb's `quant_map`) that a code indexes and a
 * block absmax scales. Every table holds float32 values, as bnb's tensors do.
 *
 *   NF4    16 quantiles of N(0, 1), normalised to [-1, 1] (QLoRA, appendix E); code i is table[i].
 *   FP4    1 sign bit, 2 exponent bits, 1 mantissa bit (bias 2, no infinities), divided by its
 *          largest magnitude 12; code bit 3 is the sign.
 *   int8   a signed byte q; the weight is q · rowAbsmax / 127.
 *   dynamic  bnb's signed 8-bit dynamic tree map (256 values), which double quantization uses for
 *          the absmax values of 4-bit weights.
 */

export type QuantType = 'nf4' | 'fp4' | 'int8';

export const QUANT_TYPES: readonly QuantType[] = ['nf4', 'fp4', 'int8'];

/** bnb's block size of 4-bit weights and of the nested (double) quantization of their absmax. */
export const BLOCK_SIZE_4BIT = 64;
export const NESTED_BLOCK_SIZE = 256;

/** NF4's values as the QLoRA paper lists them (bnb's `get_4bit_type('nf4')`), ascending. */
const NF4_VALUES = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
];

/**
 * FP4 magnitude of code bits 2..0: exponent field e = bits 2..1, mantissa m = bit 0. e = 0 is
 * subnormal (0 and 0.0625); e = 1, 2, 3 scale (1 + m/2) by 2^3, 2^2, 2^1 (bnb's layout:
 * 0b010 = 8, 0b011 = 12, 0b100 = 4, 0b101 = 6, 0b110 = 2, 0b111 = 3).
 */
function fp4Magnitude(code: number): number {
  const exponent = (code >> 1) & 3;
  const mantissa = code & 1;
  if (exponent === 0) return mantissa * 0.0625;
  const power = [0, 3, 2, 1][exponent]!;
  return (1 + mantissa / 2) * 2 ** power;
}

export const NF4_TABLE = Float32Array.from(NF4_VALUES);

/** FP4's code table normalised by its largest magnitude (12), in code order: 8..15 negative. */
export const FP4_TABLE = Float32Array.from({ length: 16 }, (_, code) => {
  const magnitude = fp4Magnitude(code & 7) / 12;
  return code & 8 ? -magnitude : magnitude;
});

/** The int8 format as a code table: byte b holds the signed value b (two's complement). */
export const INT8_TABLE = Float32Array.from({ length: 256 }, (_, b) => (b < 128 ? b : b - 256));

/** int8 weights are q · absmax · f32(1/127), as bnb's int8_vectorwise_dequant multiplies. */
export const INT8_POST_SCALE = Math.fround(1 / 127);

/**
 * torch.linspace(start, end, steps) in float32: the first half counts up from start, the second
 * half down from end, with a float32 step (what ATen computes, so the map below is bnb's bit for bit).
 */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const [from, to] = [Math.fround(start), Math.fround(end)];
  const step = Math.fround((to - from) / (steps - 1));
  const half = Math.floor(steps / 2);
  return Float32Array.from({ length: steps }, (_, i) =>
    i < half
      ? Math.fround(from + Math.fround(step * i))
      : Math.fround(to - Math.fround(step * (steps - i - 1))),
  );
}

/**
 * bnb's signed dynamic map (create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)):
 * for each decade 10^-6 … 10^0, 2^i interval means of linspace(0.1, 1) at both signs, plus 0 and 1,
 * sorted ascending.
 */
function dynamicMap(): Float32Array {
  const values: number[] = [];
  for (let i = 0; i < 7; i++) {
    const bounds = linspaceF32(0.1, 1, 2 ** i + 1);
    const decade = Math.fround(10 ** (i - 6));
    for (let j = 0; j + 1 < bounds.length; j++) {
      const mean = Math.fround(Math.fround(bounds[j]! + bounds[j + 1]!) / 2);
      const value = Math.fround(decade * mean);
      values.push(value, -value);
    }
  }
  values.push(0, 1);
  return Float32Array.from(values).sort();
}

export const DYNAMIC_TABLE = dynamicMap();

/** The code table of a format. */
export function codeTable(type: QuantType): Float32Array {
  if (type === 'nf4') return NF4_TABLE;
  return type === 'fp4' ? FP4_TABLE : INT8_TABLE;
}

/** Bits per code of a format. */
export function codeBits(type: QuantType): 4 | 8 {
  return type === 'int8' ? 8 : 4;
}
