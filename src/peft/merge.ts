/**
 * merge_and_unload: W' = W + s·B·A for every targeted projection, written as a standalone Hugging
 * Face model folder (weights, config, tokenizer files) that any HF tool loads without PEFT.
 * The merged weight is computed on the backend (CPU or WebGPU) from the adapter's delta
 * (LoraAdapter.delta). The safetensors header is written first and each tensor's bytes follow as
 * they are produced, so memory holds one tensor (untouched ones in pieces) plus the adapter,
 * never the model; the merge is exact whatever dtype the base was loaded with.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { doraColumnScale } from '../engine/ops/dora-linear.ts';
import { noGrad } from '../engine/tape.ts';
import { Tensor, tidy } from '../engine/tensor.ts';
import { publishFilesAsync, writeFileAtomic } from '../io/atomic.ts';
import { checkOutputFolder } from '../io/output-folder.ts';
import {
  bytesToF32,
  f32ToBf16,
  f32ToF16,
  SafetensorsFolder,
  type SafetensorsDtype,
  type SafetensorsPlan,
  writeSafetensorsStreaming,
} from '../io/safetensors.ts';
import { readJsonObject } from '../io/hf-folder.ts';
import { currentWeightName } from '../models/checkpoint-names.ts';
import { LoraforgeError } from '../util/errors.ts';
import { downloadF32, type LoraAdapter } from './adapter.ts';
import { EMBED_PATH, LM_HEAD_PATH } from './config.ts';

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
export async function mergedValues(
  adapter: LoraAdapter,
  name: string,
  base: Float32Array,
): Promise<Float32Array> {
  const { path, part } = moduleOf(name)!;
  if (part === 'bias') return downloadF32(adapter.biases.get(path)!);
  const copy = adapter.copies.get(path);
  return copy ? downloadF32(copy) : mergedWeight(adapter, path, base);
}

/**
 * The merged weight of an adapted module [out, in]: W + s·B·A, or for DoRA (PEFT's merge)
 * m/‖W + s·B·A‖ ⊙ (W + s·B·A) row by row; computed on the backend, read back once.
 */
async function mergedWeight(
  adapter: LoraAdapter,
  modulePath: string,
  base: Float32Array,
): Promise<Float32Array> {
  const lora = adapter.loraWeights(modulePath);
  const shape = [lora.b.shape[0]!, lora.a.shape[1]!];
  const { merged, rowScale } = noGrad(() =>
    tidy(() => {
      const w = Tensor.from(base, shape);
      const delta = adapter.delta(modulePath);
      const sum = Tensor.empty(shape);
      sum.backend.kernels.add(
        { a: w.operand(), b: delta.operand(), out: sum.operand() },
        { n: sum.size },
      );
      // g = m/‖W + s·B·A‖ per output row: the same scale DoRA inference applies to its outputs.
      const g = lora.magnitude ? doraColumnScale(w, lora, lora.magnitude) : null;
      return { merged: sum, rowScale: g };
    }),
  );
  try {
    const values = await merged.toFloat32();
    if (rowScale) scaleRows(values, await rowScale.toFloat32());
    return values;
  } finally {
    merged.dispose();
    rowScale?.dispose();
  }
}

/** values[r, ·] ×= g[r] in place (the backend has no row-scaling kernel; this is one pass). */
function scaleRows(values: Float32Array, g: Float32Array): void {
  const cols = values.length / g.length;
  for (let r = 0; r < g.length; r++) {
    const row = values.subarray(r * cols, (r + 1) * cols);
    for (let c = 0; c < cols; c++) row[c] = Math.fround(row[c]! * g[r]!);
  }
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

/** Untouched tensors are copied (or converted) in pieces of this many bytes, never whole. */
const PIECE_BYTES = 8 << 20;

/** The bytes of base tensor `name` as written into the merged file, produced piece by piece. */
async function* mergedBytes(
  source: SafetensorsFolder,
  adapter: LoraAdapter,
  name: string,
  dtype: SafetensorsDtype,
): AsyncGenerator<ArrayBufferView> {
  const info = source.info(name);
  const what = `${source.dir}: '${name}'`;
  if (adapterTouches(adapter, name)) {
    const base = bytesToF32(info.dtype, source.read(name), what);
    yield encodeAs(await mergedValues(adapter, name, base), dtype);
    return;
  }
  for (let start = 0; start < info.byteLength; start += PIECE_BYTES) {
    const piece = new Uint8Array(Math.min(PIECE_BYTES, info.byteLength - start));
    source.readSlice(name, start, piece);
    yield dtype === info.dtype ? piece : encodeAs(bytesToF32(info.dtype, piece, what), dtype);
  }
}

/**
 * Writes `baseDir`'s model with `adapter` merged into its weights (PEFT `merge_and_unload`) as a
 * new Hugging Face folder `outDir`, tensor by tensor, on the adapter's backend.
 */
export async function mergeToFolder(
  baseDir: string,
  adapter: LoraAdapter,
  outDir: string,
  opts: MergeOptions = {},
): Promise<void> {
  checkMergeTarget(baseDir, outDir, opts);
  if (readJsonObject(join(baseDir, 'config.json')).quantization_config !== undefined) {
    throw new LoraforgeError(
      `${baseDir}: merging into a quantized checkpoint (quantization_config) is not supported yet`,
      'merge into the dense checkpoint it was quantized from (an adapter trained on a quantized base applies to it unchanged)',
    );
  }
  const source = SafetensorsFolder.open(baseDir);
  try {
    checkMergeable(adapter, source.has('lm_head.weight'));
    const plans: SafetensorsPlan[] = source.names().map((name) => {
      const info = source.info(name);
      const dtype = opts.dtype && FLOATING.has(info.dtype) ? opts.dtype : info.dtype;
      return {
        name,
        dtype,
        shape: info.shape,
        bytes: () => mergedBytes(source, adapter, name, dtype),
      };
    });
    if (plans.length === 0) throw new LoraforgeError(`${baseDir}: no weights to merge`);
    await publishFilesAsync(
      outDir,
      async (tmp) => {
        mkdirSync(tmp, { recursive: true });
        await writeSafetensorsStreaming(join(tmp, 'model.safetensors'), plans);
        writeSmallFiles(baseDir, tmp, opts);
      },
      // A folder is a model once config.json is there: it goes in after the weights.
      { commitLast: ['config.json'] },
    );
  } finally {
    source.close();
  }
}

/** config.json (dtype updated), tokenizer files and the caller's text files beside the weights. */
function writeSmallFiles(baseDir: string, tmp: string, opts: MergeOptions): void {
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
}
