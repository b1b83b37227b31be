/**
 * Writes a model folder of random bf16 weights of a named shape (src/models/random.ts), streamed
 * tensor by tensor, so any size works (the Qwen2.5-3B shape is ~6.2 GB):
 *   node --import tsx scripts/make-random-model.ts --arch qwen2.5-3b --out DIR [--seed N] [--fast]
 *                                                  [--layers N]
 * --fast repeats one block of 2^22 random values (from a random offset per matrix) instead of
 * drawing every value: plausible weights, written at disk speed (benchmarks of memory and speed).
 * --layers N keeps the first N decoder layers of the shape (same matrices per layer, fewer of them:
 * a shorter step for slow devices, e.g. `bench:train --device webgpu --model DIR` on lavapipe).
 */
import { RANDOM_MODEL_SHAPES, writeRandomModelStreaming } from '../src/models/random.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const arch = flag('--arch') ?? 'qwen2-0.5b';
const out = flag('--out');
const layers = flag('--layers');
const named = RANDOM_MODEL_SHAPES[arch];
const shape = named && layers ? withLayers(named, Number(layers)) : named;
if (!shape || !out) {
  console.error(
    `usage: make-random-model.ts --arch ${Object.keys(RANDOM_MODEL_SHAPES).join('|')} --out DIR [--seed N] [--fast] [--layers N]`,
  );
  process.exit(2);
}
/** The config with its first `count` decoder layers (and their per-layer types, if listed). */
function withLayers(config: Record<string, unknown>, count: number): Record<string, unknown> {
  const total = Number(config.num_hidden_layers);
  if (!Number.isInteger(count) || count < 1 || count > total) {
    console.error(`--layers: a whole number from 1 to ${total}`);
    process.exit(2);
  }
  const types = config.layer_types;
  return {
    ...config,
    num_hidden_layers: count,
    ...(Array.isArray(types) && { layer_types: types.slice(0, count) }),
  };
}

await writeRandomModelStreaming(out, shape, {
  dtype: 'BF16',
  seed: Number(flag('--seed') ?? 0),
  repeatBlock: process.argv.includes('--fast') ? 1 << 22 : undefined,
});
