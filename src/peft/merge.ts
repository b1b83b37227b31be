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
import { publishFiles, writeFileAtomic } from '../io/atomic.ts';
import { checkOutputFolder } from '../io/output-folder.ts';
import {
  bytesToF32,
  encodeSafetensors,
  f32ToBf16,
  f32ToF16,
  SafetensorsFolder,
  type NamedTensorData,
  type SafetensorsDtype,
} from '../io/safetensors.ts';
import { readJsonObject } from '../io/hf-folder.ts';
import { currentWeightName } from '../models/checkpoint-names.ts';
import { LoraforgeError } from '../util/errors.ts';
import { hostF32, type LoraAdapter } from './adapter.ts';
import { EMBED_PATH, LM_HEAD_PATH, loraScale } from './config.ts';

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

/**
 * Throws for what merging cannot fold into a standalone model (yet): LoRA on the embeddings or
 * the head, and a trained head copy when the base model ties its head to the embeddings.
 */
export function checkMergeable(adapter: LoraAdapter, hasLmHead: boolean): void {
  if (adapter.modules.has(EMBED_PATH) || adapter.modules.has(LM_HEAD_PATH)) {
    throw new LoraforgeError(
      'merging an adapter with LoRA on embed_tokens / lm_head is not supported yet',
      'use the adapter unmerged (--adapter)',
    );
  }
  if (adapter.copies.size && !hasLmHead) {
    throw new LoraforgeError(
      'merging modules_to_save into a model with tied embeddings is not supported',
      'the merged model would share one table between input and output',
    );
  }
}

/** A weight or bias name as module path and part; adapters use transformers' current names. */
function moduleOf(name: string): { path: string; part: 'weight' | 'bias' } | null {
  const m = /^(.+)\.(weight|bias)$/.exec(currentWeightName(name));
  return m ? { path: m[1]!, part: m[2] as 'weight' | 'bias' } : null;
}

/** Whether merging `adapter` changes the base tensor `name`. */
export function adapterTouches(adapter: LoraAdapter, name: string): boolean {
  const m = moduleOf(name);
  if (!m) return false;
  return m.part === 'bias'
    ? adapter.biases.has(m.path)
    : adapter.modules.has(m.path) || adapter.copies.has(m.path);
}

/** The merged values of the base tensor `name` (one `adapterTouches` says changes). */
export function mergedValues(adapter: LoraAdapter, name: string, base: Float32Array): Float32Array {
  const { path, part } = moduleOf(name)!;
  return part === 'bias' ? hostF32(adapter.biases.get(path)!) : mergedWeight(adapter, path, base)!;
}

/**
 * The merged weight of a module as a host f32 array [out, in], or null when the adapter leaves
 * it alone: W + s·B·A, or for DoRA (PEFT's merge) m/‖W + s·B·A‖ ⊙ (W + s·B·A) row by row.
 */
function mergedWeight(
  adapter: LoraAdapter,
  modulePath: string,
  base: Float32Array,
): Float32Array | null {
  const copy = adapter.copies.get(modulePath);
  if (copy) return hostF32(copy);
  const pair = adapter.modules.get(modulePath);
  if (!pair) return null;
  const delta = loraDelta(adapter, modulePath, adapter.effectivePair(modulePath));
  const out = base.map((w, i) => w + delta[i]!);
  if (pair.magnitude) {
    const m = hostF32(pair.magnitude);
    const cols = out.length / m.length;
    for (let r = 0; r < m.length; r++) {
      const row = out.subarray(r * cols, (r + 1) * cols);
      // PEFT's norm is taken in f32 by torch.linalg.norm; sum in f64, round once.
      let sq = 0;
      for (const v of row) sq += v * v;
      const g = Math.fround(m[r]! / Math.fround(Math.sqrt(sq)));
      for (let c = 0; c < cols; c++) row[c] = Math.fround(row[c]! * g);
    }
  }
  return out;
}

/** s·B·A as a host f32 array [out, in]. */
function loraDelta(
  adapter: LoraAdapter,
  modulePath: string,
  pair: { a: Tensor; b: Tensor },
): Float32Array {
  const [outFeatures, r] = pair.b.shape as [number, number];
  const inFeatures = pair.a.shape[1]!;
  return noGrad(() =>
    tidy(() => {
      const delta = Tensor.empty([outFeatures, inFeatures]);
      delta.backend.kernels.gemm(pair.b.operand(), pair.a.operand(), delta.operand(), {
        m: outFeatures,
        n: inFeatures,
        k: r,
        alpha: loraScale(adapter.config, modulePath),
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

export type MergeDtype = 'F32' | 'BF16' | 'F16';

/** How the merged folder is written. */
export interface MergeOptions {
  /**
   * Dtype of every floating tensor written (merged projections, embeddings, norms, head), as
   * transformers' `model.to(dtype)` converts them, and the `torch_dtype` of config.json;
   * default: each tensor as it is in the base folder.
   */
  dtype?: MergeDtype;
  /** Text files written into the merged folder after the base's files are copied (replacing them). */
  files?: Record<string, string>;
  /** Write into a non-empty folder (replacing the files a merge writes, keeping the rest). */
  overwrite?: boolean;
  /** Folders being read besides the base (the adapter), by flag name: never written over. */
  sources?: Record<string, string>;
}

const FLOATING: ReadonlySet<SafetensorsDtype> = new Set(['F32', 'BF16', 'F16']);

const TORCH_DTYPE: Record<MergeDtype, string> = {
  F32: 'float32',
  BF16: 'bfloat16',
  F16: 'float16',
};
/** Throws unless `outDir` may receive a merged model (see checkOutputFolder). */
export function checkMergeTarget(baseDir: string, outDir: string, opts: MergeOptions = {}): void {
  if (existsSync(join(outDir, 'adapter_config.json'))) {
    throw new LoraforgeError(
      `${outDir}: refusing to overwrite an adapter folder with a merged model`,
    );
  }
  checkOutputFolder(outDir, {
    overwrite: opts.overwrite ?? false,
    overwriteFlag: '--overwrite',
    sources: { '--model': baseDir, ...opts.sources },
  });
}

/** Writes `baseDir`'s model with `adapter` merged into its weights (PEFT `merge_and_unload`) as a new Hugging Face folder `outDir`. */
export function mergeToFolder(
  baseDir: string,
  adapter: LoraAdapter,
  outDir: string,
  opts: MergeOptions = {},
): void {
  checkMergeTarget(baseDir, outDir, opts);
  const source = SafetensorsFolder.open(baseDir);
  const tensors: NamedTensorData[] = [];
  try {
    checkMergeable(adapter, source.has('lm_head.weight'));
    for (const name of source.names()) {
      const info = source.info(name);
      const touched = adapterTouches(adapter, name);
      const dtype = opts.dtype && FLOATING.has(info.dtype) ? opts.dtype : info.dtype;
      if (!touched && dtype === info.dtype) {
        tensors.push({ name, dtype: info.dtype, shape: info.shape, data: source.read(name) });
        continue;
      }
      const base = bytesToF32(info.dtype, source.read(name), `${baseDir}: '${name}'`);
      const values = touched ? mergedValues(adapter, name, base) : base;
      tensors.push({ name, dtype, shape: info.shape, data: encodeAs(values, dtype) });
    }
    if (tensors.length === 0) throw new LoraforgeError(`${baseDir}: no weights to merge`);
  } finally {
    source.close();
  }
  publishFiles(
    outDir,
    (tmp) => {
      mkdirSync(tmp, { recursive: true });
      writeFileAtomic(join(tmp, 'model.safetensors'), encodeSafetensors(tensors));
      for (const file of COPIED_FILES) {
        if (existsSync(join(baseDir, file))) copyFileSync(join(baseDir, file), join(tmp, file));
      }
      if (opts.dtype) {
        const config = readJsonObject(join(baseDir, 'config.json'));
        // transformers >= 4.56 writes `dtype`, older versions `torch_dtype`; keep both right.
        config.torch_dtype = TORCH_DTYPE[opts.dtype];
        if ('dtype' in config) config.dtype = TORCH_DTYPE[opts.dtype];
        writeFileAtomic(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
      }
      for (const [file, text] of Object.entries(opts.files ?? {}))
        writeFileAtomic(join(tmp, file), text);
    },
    // A folder is a model once config.json is there: it goes in after the weights.
    { commitLast: ['config.json'] },
  );
}
