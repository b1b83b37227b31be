/**
 * Quantized projection weights at load time (QLoRA): a bf16 / f16 / f32 checkpoint is quantized
 * tensor by tensor as it is read (the unquantized tensor exists on the host only while its turn
 * lasts, never on the device), and a bitsandbytes 4-bit checkpoint (the Hub's `*-bnb-4bit`
 * folders) is read in its own layout. Only the decoder layers' linear projections are quantized,
 * as bitsandbytes does; embeddings, norms, biases and the LM head stay dense.
 *
 * bitsandbytes' serialized 4-bit weight `<module>.weight` (Params4bit, quant_storage uint8):
 *   <module>.weight                                  U8 [ceil(n/2), 1], packed codes
 *   <module>.weight.absmax                           F32 [blocks], or U8 [blocks] when nested
 *   <module>.weight.quant_map                        F32 [16]
 *   <module>.weight.nested_absmax                    F32 [ceil(blocks/256)]      (nested only)
 *   <module>.weight.nested_quant_map                 F32 [256]                   (nested only)
 *   <module>.weight.quant_state.bitsandbytes__<nf4|fp4>  U8: JSON {quant_type, blocksize, dtype,
 *                                                    shape, and nested_blocksize, nested_dtype,
 *                                                    nested_offset when nested}
 */
import { QUANT_TYPES, type QuantType } from '../engine/quant/formats.ts';
import { quantize, type NestedAbsmax, type QuantizedData } from '../engine/quant/quantize.ts';
import { QuantizedWeight } from '../engine/quant/quantized-weight.ts';
import { getBackend } from '../engine/tensor.ts';
import { bytesToF32, type TensorSource } from '../io/safetensors-format.ts';
import { LoraforgeError } from '../util/errors.ts';
import { loadTensor } from './load-tensor.ts';

/** Quantization applied while loading (the `quantization` option and its bnb_4bit_* companions). */
export interface Quantization {
  type: QuantType;
  /** bnb_4bit_use_double_quant: quantize the 4-bit absmax values too. */
  doubleQuant?: boolean;
}

const STATE_PREFIX = '.quant_state.bitsandbytes__';

/** The keys bitsandbytes writes into a 4-bit weight's quant_state JSON. */
const STATE_KEYS = new Set([
  'quant_type',
  'blocksize',
  'dtype',
  'shape',
  'nested_blocksize',
  'nested_dtype',
  'nested_offset',
]);

/** Whether `name` is stored as a bitsandbytes 4-bit weight. */
export function isBnb4bit(source: TensorSource, name: string): boolean {
  return source.has(`${name}.absmax`);
}

/** The quantized projection `name` [out, in]: read from bnb's layout, or quantized from floats. */
export function loadQuantizedWeight(
  source: TensorSource,
  name: string,
  shape: [number, number],
  quantization: Quantization | null,
  where: string,
): QuantizedWeight {
  if (isBnb4bit(source, name))
    return QuantizedWeight.upload(readBnb4bit(source, name, shape, where));
  if (!quantization) throw new Error(`loadQuantizedWeight: no quantization for ${name}`);
  if (!source.has(name)) throw new LoraforgeError(`${where}: missing tensor '${name}'`);
  const info = source.info(name);
  if (info.shape.length !== 2 || info.shape[0] !== shape[0] || info.shape[1] !== shape[1]) {
    throw new LoraforgeError(
      `${where}: tensor '${name}' has shape [${info.shape}], expected [${shape}]`,
    );
  }
  const options = { doubleQuant: quantization.doubleQuant };
  const backend = getBackend();
  if (!backend.hostView) {
    // The device's memory is out of the host's sight (WebGPU): quantize here, upload the codes.
    const values = bytesToF32(info.dtype, source.read(name), `${where}: '${name}'`);
    return QuantizedWeight.upload(quantize(values, shape, quantization.type, options));
  }
  // Read into the backend's memory (bf16 / f32 as stored) and quantize there with the kernel:
  // the dense tensor lives only until its codes exist.
  const dense = loadTensor(source, name, shape, info.dtype === 'BF16' ? 'bf16' : 'f32', where);
  try {
    return QuantizedWeight.quantize(dense, quantization.type, options);
  } finally {
    dense.dispose();
  }
}

/** One tensor of a bnb weight, checked for dtype and element count. */
function part(
  source: TensorSource,
  name: string,
  dtype: 'F32' | 'U8',
  count: number | null,
  where: string,
): Uint8Array {
  if (!source.has(name)) throw new LoraforgeError(`${where}: missing tensor '${name}'`);
  const info = source.info(name);
  const n = info.shape.reduce((a, b) => a * b, 1);
  if (info.dtype !== dtype || (count !== null && n !== count)) {
    throw new LoraforgeError(
      `${where}: '${name}' is ${info.dtype}[${info.shape}], expected ${dtype} with ${count ?? 'any number of'} elements`,
    );
  }
  return source.read(name);
}

function floats(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** The quant_state JSON of a bnb 4-bit weight, every key checked. */
function readQuantState(
  source: TensorSource,
  name: string,
  where: string,
): Record<string, unknown> & { quant_type: 'nf4' | 'fp4' } {
  const stateNames = ['nf4', 'fp4']
    .map((type) => `${name}${STATE_PREFIX}${type}`)
    .filter((n) => source.has(n));
  if (stateNames.length !== 1) {
    throw new LoraforgeError(
      `${where}: '${name}' has an absmax but ${stateNames.length ? 'several quant states' : `no '${name}${STATE_PREFIX}nf4' (or fp4) entry`}`,
      'only bitsandbytes 4-bit (nf4 / fp4) checkpoints are read',
    );
  }
  const bytes = part(source, stateNames[0]!, 'U8', null, where);
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  } catch {
    throw new LoraforgeError(`${where}: '${stateNames[0]}' is not JSON`);
  }
  for (const key of Object.keys(state)) {
    if (!STATE_KEYS.has(key))
      throw new LoraforgeError(`${where}: '${stateNames[0]}' has key '${key}', not understood`);
  }
  if (state.quant_type !== 'nf4' && state.quant_type !== 'fp4') {
    throw new LoraforgeError(
      `${where}: '${stateNames[0]}' quant_type ${JSON.stringify(state.quant_type)} is not nf4 or fp4`,
    );
  }
  return state as Record<string, unknown> & { quant_type: 'nf4' | 'fp4' };
}

function positiveInteger(value: unknown, what: string, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
    throw new LoraforgeError(
      `${where}: ${what} ${JSON.stringify(value)} is not a positive integer`,
    );
  return value;
}

/** A bitsandbytes 4-bit weight [out, in] as QuantizedData (the tensors as bnb wrote them). */
export function readBnb4bit(
  source: TensorSource,
  name: string,
  shape: [number, number],
  where: string,
): QuantizedData {
  const state = readQuantState(source, name, where);
  const what = `'${name}'`;
  const stateShape = state.shape;
  if (
    !Array.isArray(stateShape) ||
    stateShape.length !== 2 ||
    stateShape[0] !== shape[0] ||
    stateShape[1] !== shape[1]
  ) {
    throw new LoraforgeError(
      `${where}: ${what} quant_state shape ${JSON.stringify(stateShape)}, expected [${shape}]`,
    );
  }
  const blockSize = positiveInteger(state.blocksize, `${what} blocksize`, where);
  const n = shape[0] * shape[1];
  const blocks = Math.ceil(n / blockSize);
  const codes = part(source, name, 'U8', Math.ceil(n / 2), where);
  const table = floats(part(source, `${name}.quant_map`, 'F32', 16, where));
  const nestedName = `${name}.nested_absmax`;
  let nested: NestedAbsmax | null = null;
  let absmax: Float32Array | null = null;
  if (source.has(nestedName)) {
    const nestedBlockSize = positiveInteger(
      state.nested_blocksize,
      `${what} nested_blocksize`,
      where,
    );
    if (typeof state.nested_offset !== 'number')
      throw new LoraforgeError(`${where}: ${what} has a nested absmax but no nested_offset`);
    nested = {
      codes: part(source, `${name}.absmax`, 'U8', blocks, where),
      absmax: floats(part(source, nestedName, 'F32', Math.ceil(blocks / nestedBlockSize), where)),
      offset: Math.fround(state.nested_offset),
      blockSize: nestedBlockSize,
      table: floats(part(source, `${name}.nested_quant_map`, 'F32', 256, where)),
    };
  } else {
    absmax = floats(part(source, `${name}.absmax`, 'F32', blocks, where));
  }
  return { type: state.quant_type, shape, codes, blockSize, absmax, nested, table };
}

/**
 * Checks config.json's `quantization_config`: a bitsandbytes 4-bit checkpoint is read as stored;
 * anything else a checkpoint may declare is refused by name.
 */
export function checkQuantizationConfig(config: Record<string, unknown>, where: string): void {
  const q = config.quantization_config as Record<string, unknown> | undefined;
  if (q === undefined) return;
  const method = q.quant_method ?? 'bitsandbytes';
  if (method !== 'bitsandbytes') {
    throw new LoraforgeError(
      `${where}: quantization_config.quant_method '${String(method)}' is not supported`,
      'loraforge reads bitsandbytes 4-bit checkpoints, or quantizes a dense one (--quantization)',
    );
  }
  if (q.load_in_8bit) {
    throw new LoraforgeError(
      `${where}: bitsandbytes 8-bit checkpoints (load_in_8bit) are not read yet`,
      'load the dense checkpoint with --quantization int8',
    );
  }
  if (!q.load_in_4bit) {
    throw new LoraforgeError(
      `${where}: quantization_config has neither load_in_4bit nor load_in_8bit`,
    );
  }
  const storage = q.bnb_4bit_quant_storage;
  if (storage !== undefined && storage !== 'uint8') {
    throw new LoraforgeError(
      `${where}: bnb_4bit_quant_storage '${String(storage)}' is not supported (uint8 only)`,
    );
  }
}

/** Parses the `quantization` option (nf4 | fp4 | int8 | none). */
export function quantizationOf(type: string | undefined, doubleQuant = false): Quantization | null {
  if (!type || type === 'none') return null;
  if (!(QUANT_TYPES as readonly string[]).includes(type))
    throw new LoraforgeError(
      `quantization '${type}': expected one of none, ${QUANT_TYPES.join(', ')}`,
    );
  return { type: type as QuantType, doubleQuant };
}
