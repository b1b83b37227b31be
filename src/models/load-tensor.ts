/** One named tensor of a TensorSource read into a device tensor of a chosen dtype. */
import type { DType } from '../engine/dtype.ts';
import { f32ToBf16, f32ToF16 } from '../engine/half.ts';
import { Tensor, getBackend } from '../engine/tensor.ts';
import { bytesToF32, type TensorSource } from '../io/safetensors-format.ts';
import { LoraforgeError } from '../util/errors.ts';

/** Storage type of weight matrices. */
export type WeightDType = 'f32' | 'bf16' | 'f16';

const SAFETENSORS_DTYPE: Record<WeightDType, string> = { f32: 'F32', bf16: 'BF16', f16: 'F16' };

/** Reads one tensor from `source` into a new tensor of `dtype`, checking its shape. */
export function loadTensor(
  source: TensorSource,
  name: string,
  shape: readonly number[],
  dtype: DType,
  where: string,
): Tensor {
  return loadTensorInto(source, name, Tensor.empty(shape, dtype).keep(), where);
}

/** Reads one tensor from `source` into `t` (its shape and dtype), checking the shape; returns t. */
export function loadTensorInto(
  source: TensorSource,
  name: string,
  t: Tensor,
  where: string,
): Tensor {
  const { shape, dtype } = t;
  if (!source.has(name)) throw new LoraforgeError(`${where}: missing tensor '${name}'`);
  const info = source.info(name);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new LoraforgeError(
      `${where}: tensor '${name}' has shape [${info.shape}], expected [${shape}]`,
    );
  }
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
