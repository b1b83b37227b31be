/** Shared test setup: one CPU backend per test process, golden file access. */
import { join } from 'node:path';
import { CpuBackend } from '../src/engine/cpu/backend.ts';
import { setBackend } from '../src/engine/tensor.ts';
import { SafetensorsFile, bytesToF32, bytesToI32 } from '../src/io/safetensors.ts';

export const GOLDEN = join(import.meta.dirname, '..', '..', 'shared', 'golden');
export const TINY = join(GOLDEN, 'qwen2-tiny');

let backend: Promise<CpuBackend> | undefined;

export function useCpuBackend(threads = 2): Promise<CpuBackend> {
  backend ??= CpuBackend.create({ threads }).then((b) => {
    setBackend(b);
    return b;
  });
  return backend;
}

export interface GoldenTensor<T> {
  data: T;
  shape: readonly number[];
}

export function readGolden(path: string): {
  f32(name: string): GoldenTensor<Float32Array>;
  i32(name: string): GoldenTensor<Int32Array>;
  names(): string[];
} {
  const file = SafetensorsFile.open(path);
  return {
    f32: (name) => ({
      data: bytesToF32(file.info(name).dtype, file.read(name)),
      shape: file.info(name).shape,
    }),
    i32: (name) => ({
      data: bytesToI32(file.info(name).dtype, file.read(name)),
      shape: file.info(name).shape,
    }),
    names: () => file.names(),
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** ‖a − b‖ / ‖b‖ */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** The size of the tiny random chat models (its vocabulary is the tiny-chat tokenizer's). */
export const TINY_CHAT_SHAPE = {
  vocab_size: 2048,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: true,
  eos_token_id: 2047,
};

/**
 * A small random Qwen2 model folder using the shipped tiny-chat tokenizer (2048 tokens): fast
 * enough for end-to-end tests of training, chat and serving.
 */
export async function makeRandomChatModel(
  dir: string,
  seed = 0,
  /** Another family's config.json (its vocab_size should stay 2048, the tokenizer's). */
  config?: Record<string, unknown>,
): Promise<string> {
  const { copyFileSync } = await import('node:fs');
  const { writeRandomModel } = await import('../src/models/random.ts');
  writeRandomModel(
    dir,
    config ?? { ...TINY_CHAT_SHAPE, architectures: ['Qwen2ForCausalLM'], rope_theta: 10000 },
    { seed, std: 0.5 },
  );
  const assets = join(import.meta.dirname, '..', 'assets', 'tiny-chat');
  for (const file of ['tokenizer.json', 'tokenizer_config.json'])
    copyFileSync(join(assets, file), join(dir, file));
  return dir;
}

/** Golden packages of the families beyond qwen2 (same layout as qwen2-tiny). */
export const FAMILY_GOLDENS: { name: string; dir: string }[] = [
  { name: 'qwen3-tiny', dir: join(GOLDEN, 'qwen3-tiny') },
  // Made by this repository (scripts/golden/README.md), committed under test/fixtures/golden.
  { name: 'gemma3-tiny', dir: join(import.meta.dirname, 'fixtures', 'golden', 'gemma3-tiny') },
  { name: 'smollm3-tiny', dir: join(import.meta.dirname, 'fixtures', 'golden', 'smollm3-tiny') },
  { name: 'phi3-tiny', dir: join(import.meta.dirname, 'fixtures', 'golden', 'phi3-tiny') },
];
