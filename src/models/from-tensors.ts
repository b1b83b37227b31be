/**
 * Builds a DecoderModel from a parsed config and a source of named tensors, with no file system
 * (load.ts opens a model folder; a browser passes bytes it fetched). Tensors are copied one by one
 * so peak memory stays close to the final weights. Matrices are kept in the requested storage
 * dtype (bf16 halves the bytes of frozen weights); norms and biases stay f32. Projections that
 * read the same input (q, k, v; gate, up) are stored back to back as one group (decoder.ts:
 * ProjectionGroup), each projection's weight and bias a view of the group's.
 */
import type { DType } from '../engine/dtype.ts';
import { Tensor } from '../engine/tensor.ts';
import type { TensorSource } from '../io/safetensors-format.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { DecoderConfig } from './config.ts';
import {
  DecoderModel,
  projectionPath,
  SHARED_INPUT_PROJECTIONS,
  type DecoderLayer,
  type ProjectionGroup,
  type ProjectionName,
} from './decoder.ts';
import { withCurrentNames } from './checkpoint-names.ts';
import { isBnb4bit, loadQuantizedWeight, type Quantization } from './quantized-load.ts';
import { loadTensor, loadTensorInto, type WeightDType } from './load-tensor.ts';
import { hasBias, layerNormShapes, projectionShapes } from './shapes.ts';

export { loadTensor, type WeightDType };

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
    const groups: ProjectionGroup[] = [];
    const isQuantized = (name: ProjectionName) =>
      Boolean(opts.quantization) || isBnb4bit(source, `${projectionPath(i, name, prefix)}.weight`);
    for (const names of SHARED_INPUT_PROJECTIONS) {
      if (!names.every((name) => shapes.has(name) && !isQuantized(name))) continue;
      const biased = names.filter((name) => hasBias(c, name)).length;
      if (biased !== 0 && biased !== names.length) continue;
      const rows = names.map((name) => shapes.get(name)![0]);
      const groupRows = rows.reduce((a, b) => a + b, 0);
      const inFeatures = shapes.get(names[0]!)![1];
      const group: ProjectionGroup = {
        names,
        weight: Tensor.empty([groupRows, inFeatures], dtype).keep(),
        bias: biased ? Tensor.empty([groupRows]).keep() : null,
      };
      let row = 0;
      names.forEach((name, n) => {
        const path = projectionPath(i, name, prefix);
        const weight = group.weight.view([rows[n]!, inFeatures], row * inFeatures).keep();
        const bias = group.bias?.view([rows[n]!], row).keep() ?? null;
        loadTensorInto(source, `${path}.weight`, weight, where);
        opts.onTensor?.(++done, total);
        if (bias) loadTensorInto(source, `${path}.bias`, bias, where);
        proj[name] = { path, weight, bias, lora: null };
        row += rows[n]!;
      });
      groups.push(group);
    }
    for (const [name, shape] of shapes) {
      if (proj[name]) continue;
      const path = projectionPath(i, name, prefix);
      const weightName = `${path}.weight`;
      proj[name] = {
        path,
        weight: isQuantized(name)
          ? loadQuantized(weightName, shape)
          : load(weightName, shape, dtype),
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
    layers.push({ norms: layerNorms, proj, groups });
  }
  const finalNorm = load(`${prefix}.norm.weight`, [c.hiddenSize], 'f32');
  const lmHead =
    c.tieWordEmbeddings || !source.has('lm_head.weight')
      ? embed
      : load('lm_head.weight', [c.vocabSize, c.hiddenSize], dtype);
  return new DecoderModel(c, embed, layers, finalNorm, lmHead);
}
