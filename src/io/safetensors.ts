/**
 * safetensors files on disk: reading (one file or a sharded folder) and writing. The format itself
 * (header validation, dtype conversions) lives in safetensors-format.ts, which has no file system
 * and is re-exported here.
 *
 * Tensors are read one at a time into fresh buffers, so loading a model never holds more than the
 * final weights plus one tensor in flight.
 */
import { closeSync, existsSync, fstatSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';
import { writeFileAtomic, writeFileAtomicStreamingAsync } from './atomic.ts';
import { openChecked, parseJsonChecked, readTextChecked, READ_LIMITS } from './safe-read.ts';
import {
  SafetensorsReader,
  encodeSafetensors,
  type NamedTensorData,
  type TensorData,
  parseSafetensorsHeader,
  safetensorsLayout,
  type SafetensorsHeader,
  tensorByteLength,
  type TensorLayout,
  type TensorInfo,
  type TensorSource,
} from './safetensors-format.ts';

export * from './safetensors-format.ts';
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../engine/half.ts';

function readExactly(fd: number, target: Uint8Array, position: number): number {
  let done = 0;
  while (done < target.byteLength) {
    const n = readSync(fd, target, done, target.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function readHeaderFromFd(fd: number, path: string): SafetensorsHeader {
  return parseSafetensorsHeader(path, fstatSync(fd).size, (target, position) =>
    readExactly(fd, target, position),
  );
}

/** Reads and fully validates a safetensors header without reading any tensor data. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openOrThrow(path);
  try {
    return readHeaderFromFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

/** A regular file (a FIFO or device would hang or never end), of any size, confined if asked. */
function openOrThrow(path: string, within?: string): number {
  return openChecked(path, { maxBytes: Number.MAX_SAFE_INTEGER, within }).fd;
}

export class SafetensorsFile extends SafetensorsReader {
  private fd: number | undefined;

  private constructor(path: string, fd: number) {
    super(path, readHeaderFromFd(fd, path));
    this.fd = fd;
  }

  /** `within`: real path of a folder the file must stay inside (symlinks included). */
  static open(path: string, within?: string): SafetensorsFile {
    const fd = openOrThrow(path, within);
    try {
      return new SafetensorsFile(path, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  protected readAt(target: Uint8Array, position: number): number {
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    return readExactly(this.fd, target, position);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** One name → tensor view over the shards of a model folder. */
export class SafetensorsFolder implements TensorSource {
  private constructor(
    readonly dir: string,
    private readonly files: SafetensorsFile[],
    private readonly fileOf: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  /** Opens `model.safetensors`, or the shards listed by `model.safetensors.index.json`. */
  static open(dir: string): SafetensorsFolder {
    const single = join(dir, 'model.safetensors');
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(index)) return SafetensorsFolder.openSharded(dir, index);
    if (existsSync(single)) {
      const file = SafetensorsFile.open(single);
      return new SafetensorsFolder(dir, [file], new Map(file.names().map((n) => [n, file])));
    }
    throw new LoraforgeError(
      `${dir}: no model.safetensors or model.safetensors.index.json`,
      'only safetensors weights are supported; convert .bin checkpoints with transformers save_pretrained(safe_serialization=True)',
    );
  }

  private static openSharded(dir: string, indexPath: string): SafetensorsFolder {
    const weightMap = readWeightMap(indexPath);
    const byShard = new Map<string, SafetensorsFile>();
    const fileOf = new Map<string, SafetensorsFile>();
    try {
      for (const [tensor, shard] of Object.entries(weightMap)) {
        let file = byShard.get(shard);
        if (!file) {
          file = SafetensorsFile.open(join(dir, shard));
          byShard.set(shard, file);
        }
        if (!file.has(tensor))
          throw new LoraforgeError(
            `${indexPath}: tensor '${tensor}' is mapped to ${shard}, which does not contain it`,
          );
        fileOf.set(tensor, file);
      }
    } catch (err) {
      for (const file of byShard.values()) file.close();
      throw err;
    }
    return new SafetensorsFolder(dir, [...byShard.values()], fileOf);
  }

  names(): string[] {
    return [...this.fileOf.keys()];
  }

  has(name: string): boolean {
    return this.fileOf.has(name);
  }

  private fileFor(name: string): SafetensorsFile {
    const file = this.fileOf.get(name);
    if (!file)
      throw new LoraforgeError(`${this.dir}: no tensor named '${name}' in the model weights`);
    return file;
  }

  info(name: string): TensorInfo {
    return this.fileFor(name).info(name);
  }

  read(name: string): Uint8Array {
    return this.fileFor(name).read(name);
  }

  readInto(name: string, target: Uint8Array): void {
    this.fileFor(name).readInto(name, target);
  }

  readSlice(name: string, start: number, target: Uint8Array): void {
    this.fileFor(name).readSlice(name, start, target);
  }

  close(): void {
    for (const file of this.files) file.close();
  }
}

/** Shards sit next to their index; anything path-like could point outside the model folder. */
const SHARD_FILE_NAME = /^[\w.-]+\.safetensors$/;

/** Reads `weight_map` (tensor name → shard file name) from a `model.safetensors.index.json`. */
export function readWeightMap(indexPath: string): Record<string, string> {
  const index = parseJsonChecked(
    readTextChecked(indexPath, { maxBytes: READ_LIMITS.config }),
    indexPath,
  );
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (
    typeof weightMap !== 'object' ||
    weightMap === null ||
    !Object.values(weightMap).every((v) => typeof v === 'string' && SHARD_FILE_NAME.test(v))
  ) {
    throw new LoraforgeError(
      `${indexPath}: missing or invalid "weight_map" (tensor name → shard file name)`,
    );
  }
  return weightMap as Record<string, string>;
}

export function openSafetensorsFolder(dir: string): SafetensorsFolder {
  return SafetensorsFolder.open(dir);
}

/** Writes a safetensors file atomically (default metadata `{format: 'pt'}`, as PyTorch code expects). */
export function writeSafetensors(
  path: string,
  tensors: readonly NamedTensorData[] | Readonly<Record<string, TensorData>>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** A tensor to write whose bytes are produced only when its turn comes, in one or more pieces. */
export interface SafetensorsPlan extends TensorLayout {
  bytes(): Iterable<ArrayBufferView> | AsyncIterable<ArrayBufferView>;
}

/**
 * Writes a safetensors file atomically, tensor by tensor: the header (names, dtypes, shapes,
 * offsets) goes first, then each tensor's bytes as they are produced, so memory holds one tensor
 * (or one piece of one) at a time, never the file. Same layout as writeSafetensors.
 */
export async function writeSafetensorsStreaming(
  path: string,
  tensors: readonly SafetensorsPlan[],
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, order } = safetensorsLayout(tensors, metadata);
  await writeFileAtomicStreamingAsync(path, async (write) => {
    write(header);
    for (const t of order) {
      const expected = tensorByteLength(t);
      let written = 0;
      for await (const piece of t.bytes()) {
        write(new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength));
        written += piece.byteLength;
      }
      if (written !== expected) {
        throw new Error(
          `writeSafetensors: '${t.name}' ${t.dtype}${JSON.stringify(t.shape)} needs ${expected} bytes, got ${written}`,
        );
      }
    }
  });
}
