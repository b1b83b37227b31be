/**
 * Builds a DecoderModel from a parsed config and a source of named tensors, with no file system
 * (load.ts opens a model folder; a browser passes bytes it fetched). Tensors are copied one by one
 * so peak memory stays close to the final weights. Matrices are kept in the requested storage
 * dtype (bf16 halves the bytes of frozen weights); norms and biases stay f32.
 */
import type { DType } from '../engine/dtype.ts';
import { Tensor, getBackend } from '../engine/tensor.ts';
import { f32ToBf16, f32ToF16 } from '../engine/half.ts';
import { bytesToF32, type TensorSource } from '../io/safetensors-format.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { DecoderConfig } from './config.ts';
import { DecoderModel, projectionPath, type DecoderLayer } from './decoder.ts';
import { withCurrentNames } from './checkpoint-names.ts';
import { isBnb4bit, loadQuantizedWeight, type Quantization } from './quantized-load.ts';
import { hasBias, layerNormShapes, projectionShapes } from './shapes.ts';

/** Storage type of weight matrices. */
export type WeightDType = 'f32' | 'bf16' | 'f16';

export interface LoadModelOptions {
  /** Storage type of the weight matrices (default f32). */
  dtype?: WeightDType;
  /** Called after each tensor, for progress bars. */
  onTensor?: (done: number, total: number) => void;
  /**
   * Quantize the decoder layers' projections while loading (QLoRA's frozen base); a bitsandbytes
   * 4-bit checkpoint is read quantized whatever this says (quantized-load.ts).
   */
  quantization?: Quantization | null;
}

const SAFETENSORS_DTYPE: Record<WeightDType, string> = { f32: 'F32', bf16: 'BF16', f16: 'F16' };

/** Reads one tensor from `source` into a new tensor of `dtype`, checking its shape. */
export function loadTensor(
  source: TensorSource,
  name: string,
  shape: readonly number[],
  dtype: DType,
  where: string,
): Tensor {
  if (!source.has(name)) throw new LoraforgeError(`${where}: missing tensor '${name}'`);
  const info = source.info(name);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new LoraforgeError(
      `${where}: tensor '${name}' has shape [${info.shape}], expected [${shape}]`,
    );
  }
  const t = Tensor.empty(shape, dtype).keep();
  const backend = getBackend();
  if (info.dtype === SAFETENSORS_DTYPE[dtype as WeightDType]) {
    // Straight from the file into device memory when the host can see it: no transient copy.
    if (backend.hostView) source.readInto(name, backend.hostView(t.storage, t.byteOffset, t.bytes));
    else backend.upload(t.storage, t.byteOffset, source.read(name));
    return t;
  }
  const values = bytesToF32(info.dtype, source.read(name), `${where}: '${name}'`);
  if (dtype === 'f32') {
    backend.upload(t.storage, t.byteOffset, values);
  } else {
    backend.upload(
      t.storage,
      t.byteOffset,
      dtype === 'bf16' ? f32ToBf16(values) : f32ToF16(values),
    );
  }
  return t;
}

/**
 * The model described by `config` with its weights from `fileSource` (left open: the caller owns
 * it; legacy multimodal names such as `language_model.model.*` are read as their current ones).
 * `where` names the weights in errors (a folder or a URL).
 */
export function modelFromTensors(
  config: DecoderConfig,
  fileSource: TensorSource,
  where: string,
  opts: LoadModelOptions = {},
): DecoderModel {
  const source = withCurrentNames(fileSource);
  const dtype = opts.dtype ?? 'f32';
  const c = config;
  if (dtype === 'f16' && c.f16Refused) {
    throw new LoraforgeError(
      `dtype f16 is refused for ${c.architecture}: ${c.f16Refused}`,
      'use --dtype bf16 (what the checkpoint ships in) or f32',
    );
  }
  const norms = layerNormShapes(c);
  const shapes = projectionShapes(c);
  const total = 3 + c.numLayers * (norms.length + shapes.size);
  let done = 0;
  const load = (name: string, shape: number[], as: DType): Tensor => {
    const t = loadTensor(source, name, shape, as, where);
    opts.onTensor?.(++done, total);
    return t;
  };
  const loadQuantized = (name: string, shape: [number, number]) => {
    const w = loadQuantizedWeight(source, name, shape, opts.quantization ?? null, where);
    opts.onTensor?.(++done, total);
    return w;
  };
  const prefix = c.modulePrefix;
  const embed = load(`${prefix}.embed_tokens.weight`, [c.vocabSize, c.hiddenSize], dtype);
  const layers: DecoderLayer[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const proj: DecoderLayer['proj'] = {};
    for (const [name, shape] of shapes) {
      const path = projectionPath(i, name, prefix);
      const weightName = `${path}.weight`;
      const quantized = opts.quantization || isBnb4bit(source, weightName);
      proj[name] = {
        path,
        weight: quantized ? loadQuantized(weightName, shape) : load(weightName, shape, dtype),
        bias: hasBias(c, name)
          ? loadTensor(source, `${path}.bias`, [shape[0]], 'f32', where)
          : null,
        lora: null,
      };
    }
    const layerNorms: DecoderLayer['norms'] = {};
    for (const [name, size] of norms) {
      layerNorms[name] = load(`${prefix}.layers.${i}.${name}.weight`, [size], 'f32');
    }
    layers.push({ norms: layerNorms, proj });
  }
  const finalNorm = load(`${prefix}.norm.weight`, [c.hiddenSize], 'f32');
  const lmHead =
    c.tieWordEmbeddings || !source.has('lm_head.weight')
      ? embed
      : load('lm_head.weight', [c.vocabSize, c.hiddenSize], dtype);
  return new DecoderModel(c, embed, layers, finalNorm, lmHead);
}
