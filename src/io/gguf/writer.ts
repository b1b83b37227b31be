/**
 * Streaming GGUF writer. The header (metadata and every tensor's info) is known before any data,
 * so it is written first; then each tensor's bytes are produced, written and dropped in turn:
 * peak memory is one tensor. The file is built under a temporary sibling name, fsynced and
 * renamed at the end, so an interrupted export never leaves a file under the final name.
 */
import { existsSync } from 'node:fs';
import { LoraforgeError } from '../../util/errors.ts';
import { writeFileAtomicStreamingAsync } from '../atomic.ts';
import { alignUp, GGUF_DEFAULT_ALIGNMENT, type GgufMetadata } from './format.ts';
import { type GgmlType, tensorBytes } from './ggml-types.ts';
import { encodeGgufHeader, type GgufTensorInfo } from './metadata.ts';

export interface GgufTensorPlan {
  name: string;
  /** Row-major shape (outermost first). */
  shape: readonly number[];
  type: GgmlType;
  /**
   * The values (f32, row-major), produced just before they are encoded and written, in pieces of
   * whole rows (a large tensor need not be widened to f32 all at once); asynchronously when
   * they are read back from a GPU (a merged adapter).
   */
  chunks(): Iterable<Float32Array> | AsyncIterable<Float32Array>;
}

export interface WriteGgufOptions {
  /** Replace an existing file (default: refuse). */
  overwrite?: boolean;
  /** Called after each tensor is written. */
  onTensor?: (index: number, total: number, name: string) => void;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Refuses to replace an existing file unless told to. */
export function checkOutputFile(path: string, overwrite: boolean | undefined): void {
  if (!overwrite && existsSync(path)) {
    throw new LoraforgeError(`${path} already exists`, 'pass --overwrite to replace it');
  }
}

export async function writeGguf(
  path: string,
  metadata: GgufMetadata,
  tensors: readonly GgufTensorPlan[],
  opts: WriteGgufOptions = {},
): Promise<void> {
  checkOutputFile(path, opts.overwrite);
  const alignment = GGUF_DEFAULT_ALIGNMENT;
  const infos: GgufTensorInfo[] = [];
  let offset = 0;
  for (const t of tensors) {
    const count = elementCount(t.shape);
    const rowLength = t.shape[t.shape.length - 1]!;
    if (rowLength % t.type.blockSize !== 0) {
      throw new Error(`${t.name}: rows of ${rowLength} do not fit ${t.type.name} blocks`);
    }
    infos.push({ name: t.name, shape: t.shape, typeId: t.type.id, offset });
    offset = alignUp(offset + tensorBytes(t.type, count), alignment);
  }
  await writeFileAtomicStreamingAsync(path, async (write) => {
    write(encodeGgufHeader(metadata, infos, alignment));
    for (const [i, t] of tensors.entries()) {
      const rowLength = t.shape[t.shape.length - 1]!;
      let values = 0;
      let bytes = 0;
      for await (const chunk of t.chunks()) {
        if (chunk.length % rowLength !== 0) {
          throw new Error(`${t.name}: a chunk of ${chunk.length} values is not whole rows`);
        }
        const encoded = t.type.encode(chunk);
        write(encoded);
        values += chunk.length;
        bytes += encoded.length;
      }
      if (values !== elementCount(t.shape)) {
        throw new Error(`${t.name}: ${values} values for shape [${t.shape.join(', ')}]`);
      }
      const pad = alignUp(bytes, alignment) - bytes;
      if (pad > 0 && i < tensors.length - 1) write(new Uint8Array(pad));
      opts.onTensor?.(i, tensors.length, t.name);
    }
  });
}
