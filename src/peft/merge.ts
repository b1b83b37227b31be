/**
 * merge_and_unload: W' = W + s·B·A for every targeted projection, written as a standalone Hugging
 * Face model folder (weights, config, tokenizer files) that any HF tool loads without PEFT.
 * Weights are streamed from the base folder one tensor at a time, so the merge is exact whatever
 * dtype the base was loaded with, and memory stays at one tensor plus the adapter.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../engine/tape.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { writeDirAtomic } from '../io/atomic.ts';
import {
  bytesToF32,
  encodeSafetensors,
  f32ToBf16,
  f32ToF16,
  SafetensorsFolder,
  type NamedTensorData,
  type SafetensorsDtype,
} from '../io/safetensors.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { LoraAdapter } from './adapter.ts';
import { loraScale } from './config.ts';

/** Files copied verbatim from the base folder when present. */
const COPIED_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
];

/** s·B·A as a host f32 array [out, in]. */
function loraDelta(adapter: LoraAdapter, modulePath: string): Float32Array | null {
  const pair = adapter.modules.get(modulePath);
  if (!pair) return null;
  const [outFeatures, r] = pair.b.shape as [number, number];
  const inFeatures = pair.a.shape[1]!;
  return noGrad(() =>
    tidy(() => {
      const delta = Tensor.empty([outFeatures, inFeatures]);
      delta.backend.kernels.gemm(pair.b.operand(), pair.a.operand(), delta.operand(), {
        m: outFeatures,
        n: inFeatures,
        k: r,
        alpha: loraScale(adapter.config),
      });
      return delta.readSync() as Float32Array;
    }),
  );
}

function encodeAs(values: Float32Array, dtype: SafetensorsDtype): ArrayBufferView {
  if (dtype === 'BF16') return f32ToBf16(values);
  if (dtype === 'F16') return f32ToF16(values);
  return values;
}

/** Output dtype of the merged weights. */
export interface MergeOptions {
  /** Output dtype of merged matrices; default: each tensor's dtype in the base folder. */
  dtype?: 'F32' | 'BF16' | 'F16';
}

/** Writes `baseDir`'s model with `adapter` merged into its weights (PEFT `merge_and_unload`) as a new Hugging Face folder `outDir`. */
export function mergeToFolder(
  baseDir: string,
  adapter: LoraAdapter,
  outDir: string,
  opts: MergeOptions = {},
): void {
  if (existsSync(outDir) && existsSync(join(outDir, 'adapter_config.json'))) {
    throw new LoraforgeError(
      `${outDir}: refusing to overwrite an adapter folder with a merged model`,
    );
  }
  const source = SafetensorsFolder.open(baseDir);
  const tensors: NamedTensorData[] = [];
  try {
    for (const name of source.names()) {
      const info = source.info(name);
      const modulePath = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : '';
      const delta = loraDelta(adapter, modulePath);
      if (!delta) {
        tensors.push({ name, dtype: info.dtype, shape: info.shape, data: source.read(name) });
        continue;
      }
      const values = bytesToF32(info.dtype, source.read(name), `${baseDir}: '${name}'`);
      for (let i = 0; i < values.length; i++) values[i] = values[i]! + delta[i]!;
      const dtype = opts.dtype ?? info.dtype;
      tensors.push({ name, dtype, shape: info.shape, data: encodeAs(values, dtype) });
    }
    if (tensors.length === 0) throw new LoraforgeError(`${baseDir}: no weights to merge`);
  } finally {
    source.close();
  }
  writeDirAtomic(outDir, (tmp) => {
    mkdirSync(tmp, { recursive: true });
    writeFileAtomic(join(tmp, 'model.safetensors'), encodeSafetensors(tensors));
    for (const file of COPIED_FILES) {
      if (existsSync(join(baseDir, file))) copyFileSync(join(baseDir, file), join(tmp, file));
    }
  });
}
