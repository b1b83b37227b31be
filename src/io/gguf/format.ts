/**
 * The GGUF container (ggml's docs/gguf.md, version 3): little-endian; a header (magic, version,
 * tensor count, metadata count), typed key-value metadata, one info record per tensor (name,
 * dimensions innermost first, ggml type, offset into the data section), then the data section,
 * which starts at a multiple of `general.alignment` (32 by default), every tensor also aligned.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types and their ids in the file. */
export const GGUF_VALUE_TYPES = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPES, 'array'>;
export type GgufScalar = number | bigint | boolean | string;

/** A typed metadata value: GGUF keeps the type, so a u32 and an i32 of the same number differ. */
export type GgufValue =
  | { type: GgufScalarType; value: GgufScalar }
  | { type: 'array'; itemType: GgufScalarType; values: readonly GgufScalar[] };

export type GgufMetadata = Map<string, GgufValue>;

/** Fixed byte width of each numeric scalar type (strings are length-prefixed). */
export const SCALAR_BYTES: Record<Exclude<GgufScalarType, 'string'>, number> = {
  u8: 1,
  i8: 1,
  bool: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  i64: 8,
  f64: 8,
};

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
