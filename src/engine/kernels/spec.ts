/**
 * A kernel declared once, as data (the role of tfjs's kernel_names.ts): its name, its named
 * buffers (dtype, access, whether it may be absent), its named scalar parameters and its plain-JS
 * reference implementation, which is what every backend is tested against. Backends register
 * one implementation per spec (cpu/kernels/*.ts, webgpu/*.ts) holding only their launch
 * decisions; the positional order of a wasm export's arguments is the order written here
 * (buffers, then params).
 *
 * Dimension vocabulary, used by every spec and kernel (llm.c's legend, extended):
 *   B   batch rows            T    tokens per row (Tq queries, Tk valid keys, kvCap cache rows)
 *   H   query heads           KVH  key/value heads (GQA: query head h reads kv head h / (H/KVH))
 *   D   head dimension        C    channels of a row (hidden size, `dim`, `cols`)
 *   V   vocabulary columns    n    flat element count
 *   rows, cols   a row-major matrix [rows, cols] (rows of tokens, cols of channels or vocabulary)
 */
import type { Operand } from '../backend.ts';
import type { DType } from '../dtype.ts';

/**
 * f32 or i32 data; `float`: any float dtype the operand carries (f32, bf16, f16); `word`: f32 or
 * i32; `any`: any dtype (the kernel reads the operand's dtype, the reference gets it too).
 */
export type BufferDType = 'f32' | 'i32' | 'float' | 'word' | 'any';

export interface BufferSpec {
  dtype: BufferDType;
  access: 'read' | 'write' | 'read_write';
  /** May be null (pointer 0 / no binding): an optional mask, a skipped gradient. */
  optional?: boolean;
}

/** Scalar kinds: numbers as WGSL / wasm see them, a flag, or one of a set of names. */
export type ParamKind = 'u32' | 'i32' | 'f32' | 'bool' | readonly string[];

export type ParamValue<K> = K extends 'bool'
  ? boolean
  : K extends readonly (infer S)[]
    ? S
    : number;

export type ParamValues<P> = { [K in keyof P]: ParamValue<P[K]> };

/** f32 data on the host; references also run on Float64Array to get float64 results. */
export type Floats = Float32Array | Float64Array;

/** What a buffer is on the host, for the reference: typed arrays (bf16 / f16 as u16 bits). */
export type HostArray<D> = D extends 'i32'
  ? Int32Array
  : D extends 'float'
    ? Floats | Uint16Array
    : D extends 'word'
      ? Floats | Int32Array
      : D extends 'any'
        ? Floats | Int32Array | Uint16Array
        : Floats;

type Nullable<S, T> = S extends { optional: true } ? T | null : T;

export type HostBuffers<B> = {
  [K in keyof B]: Nullable<B[K], HostArray<B[K] extends BufferSpec ? B[K]['dtype'] : never>>;
};

/** The dtype of each buffer of a call (what `float` / `word` / `any` buffers hold). */
export type DTypes<B> = { [K in keyof B]: DType };

/** The buffers of one call, typed by the spec: each a backend's handle `T` (null when optional). */
export type BufferArgs<B, T> = { [K in keyof B]: Nullable<B[K], T> };

export interface KernelSpec<
  B extends Record<string, BufferSpec> = Record<string, BufferSpec>,
  P extends Record<string, ParamKind> = Record<string, ParamKind>,
  R = void,
> {
  name: string;
  buffers: B;
  params: P;
  /**
   * The reference: what the kernel computes, in plain JS on host arrays. A kernel that returns
   * a scalar (`R` = number) hands it to the caller as a Promise (a GPU read is asynchronous).
   */
  reference(buffers: HostBuffers<B>, params: ParamValues<P>, dtypes: DTypes<B>): R;
}

/** Declares a kernel; the `const` parameters keep the literal names and kinds for the types. */
export function defineKernel<
  const B extends Record<string, BufferSpec>,
  const P extends Record<string, ParamKind>,
  R = void,
>(spec: KernelSpec<B, P, R>): KernelSpec<B, P, R> {
  return spec;
}

// Any spec, whatever its buffers and params (implementations are checked against their own).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySpec = KernelSpec<any, any, any>;

export type SpecParams<S extends AnySpec> = ParamValues<S['params']>;
export type SpecResult<S extends AnySpec> = ReturnType<S['reference']>;

/** How an op calls a kernel: operands by buffer name, scalars by param name. */
export type Dispatch<S extends AnySpec> = (
  buffers: BufferArgs<S['buffers'], Operand>,
  params: SpecParams<S>,
) => SpecResult<S> extends void ? void : Promise<SpecResult<S>>;

/** A backend's implementation of a spec, given its own buffer handles `T` (and a context `C`). */
export type Implementation<S extends AnySpec, T, C> = (
  buffers: BufferArgs<S['buffers'], T>,
  params: SpecParams<S>,
  context: C,
) => SpecResult<S> extends void ? void : Promise<SpecResult<S>> | SpecResult<S>;

type ParamEncoder = (params: Record<string, unknown>) => number[];

const encoders = new WeakMap<AnySpec, ParamEncoder>();

/** The encoder of a spec's params, built once: `paramNumbers` runs on every CPU kernel call. */
function paramEncoder(spec: AnySpec): ParamEncoder {
  const kinds = Object.entries(spec.params as Record<string, ParamKind>);
  return (params) => {
    const numbers = new Array<number>(kinds.length);
    for (let i = 0; i < kinds.length; i++) {
      const [name, kind] = kinds[i]!;
      const value = params[name];
      if (kind === 'bool') numbers[i] = value ? 1 : 0;
      else if (typeof kind !== 'string') numbers[i] = kind.indexOf(value as string);
      else numbers[i] = value as number;
    }
    return numbers;
  };
}

/** Scalar params in declaration order as numbers (flags 0 / 1): a wasm export's tail arguments. */
export function paramNumbers(spec: AnySpec, params: Record<string, unknown>): number[] {
  let encode = encoders.get(spec);
  if (!encode) {
    encode = paramEncoder(spec);
    encoders.set(spec, encode);
  }
  return encode(params);
}
