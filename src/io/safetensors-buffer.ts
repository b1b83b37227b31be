/** A safetensors file already in memory (a fetch() or a File the user picked, in a browser). */
import { SafetensorsReader, parseSafetensorsHeader } from './safetensors-format.ts';

export class SafetensorsBuffer extends SafetensorsReader {
  /** `name` only labels errors (a file name or URL). */
  constructor(
    private readonly bytes: Uint8Array,
    name: string,
  ) {
    super(
      name,
      parseSafetensorsHeader(name, bytes.byteLength, (t, p) => copyAt(bytes, t, p)),
    );
  }

  protected readAt(target: Uint8Array, position: number): number {
    return copyAt(this.bytes, target, position);
  }

  /** Nothing to release: the bytes belong to the caller. */
  close(): void {}
}

function copyAt(bytes: Uint8Array, target: Uint8Array, position: number): number {
  const available = bytes.subarray(position, position + target.byteLength);
  target.set(available);
  return available.byteLength;
}
