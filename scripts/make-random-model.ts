/**
 * Writes a model folder of random bf16 weights of a named shape (src/models/random.ts), streamed
 * tensor by tensor, so any size works (the Qwen2.5-3B shape is ~6.2 GB):
 *   node --import tsx scripts/make-random-model.ts --arch qwen2.5-3b --out DIR [--seed N] [--fast]
 * --fast repeats one block of 2^22 random values (from a random offset per matrix) instead of
 * drawing every value: plausible weights, written at disk speed (benchmarks of memory and speed).
 */
import { RANDOM_MODEL_SHAPES, writeRandomModelStreaming } from '../src/models/random.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const arch = flag('--arch') ?? 'qwen2-0.5b';
const out = flag('--out');
const shape = RANDOM_MODEL_SHAPES[arch];
if (!shape || !out) {
  console.error(
    `usage: make-random-model.ts --arch ${Object.keys(RANDOM_MODEL_SHAPES).join('|')} --out DIR [--seed N] [--fast]`,
  );
  process.exit(2);
}
await writeRandomModelStreaming(out, shape, {
  dtype: 'BF16',
  seed: Number(flag('--seed') ?? 0),
  repeatBlock: process.argv.includes('--fast') ? 1 << 22 : undefined,
});
