/**
 * Options declared once, as PEFT's and HF's dataclass fields are: each has a type, a default, a
 * one-line help and its allowed values, and everything else derives from that declaration: the
 * typed config (`OptionValues`), validation of YAML / flag values (`resolveOptions`), command-line
 * flags (`flagName`) and camelCase library names (`CamelKeys`).
 */
import { LoraforgeError } from './errors.ts';

/** The value types an option can have (`map`: NAME=VALUE pairs). */
export type OptionKind = 'string' | 'number' | 'integer' | 'boolean' | 'map';

/**
 * One option. `T` is its value type; `Present` is true when a resolved config always holds a value
 * (it has a default or is required).
 */
export interface OptionSpec<T = unknown, Present extends boolean = boolean> {
  readonly kind: OptionKind;
  readonly help: string;
  readonly default?: T;
  /** Must be given (no default). */
  readonly required?: boolean;
  /** The only accepted values (strings). */
  readonly choices?: readonly string[];
  /** Inclusive lower bound, or exclusive when `above` is set. */
  readonly min?: number;
  readonly above?: number;
  /** Exclusive upper bound. */
  readonly below?: number;
  /** Inclusive upper bound. */
  readonly max?: number;
  /** Phantom marker for the type of resolved configs; never set. */
  readonly present?: Present;
}

type Bounds = Pick<OptionSpec, 'min' | 'above' | 'below' | 'max'>;

function spec<T, P extends boolean>(s: Omit<OptionSpec<T, P>, 'present'>): OptionSpec<T, P> {
  return s as OptionSpec<T, P>;
}

/** Builders for option declarations; the overloads give resolved configs their exact types. */
export const option = {
  /** A string, with a default or none. */
  string: ((help: string, def?: string) => spec({ kind: 'string', help, default: def })) as {
    (help: string): OptionSpec<string, false>;
    (help: string, def: string): OptionSpec<string, true>;
  },
  /** One of `choices`. */
  choice: <const C extends string>(help: string, choices: readonly C[], def: C) =>
    spec<C, true>({ kind: 'string', help, choices, default: def }),
  /** A whole number, with a default or none, and optional bounds. */
  integer: ((help: string, def?: number, bounds: Bounds = {}) =>
    spec({ kind: 'integer', help, default: def, ...bounds })) as {
    (help: string, def?: undefined, bounds?: Bounds): OptionSpec<number, false>;
    (help: string, def: number, bounds?: Bounds): OptionSpec<number, true>;
  },
  /** A number with a default and optional bounds. */
  number: (help: string, def: number, bounds: Bounds = {}) =>
    spec<number, true>({ kind: 'number', help, default: def, ...bounds }),
  /** true / false (`1` / `0`, a bare flag is true). */
  boolean: (help: string, def: boolean) =>
    spec<boolean, true>({ kind: 'boolean', help, default: def }),
  /** NAME=VALUE pairs (`a=1,b=2` on the command line, a mapping in YAML). */
  map: (help: string) => spec<Record<string, string>, false>({ kind: 'map', help }),
  /** The same option, but it must be given. */
  required: <T>(s: OptionSpec<T, false>) => spec<T, true>({ ...s, required: true }),
};

/** Options by key (snake_case, as in YAML). */
export type OptionTable = Record<string, OptionSpec>;

/** The resolved config of a table: keys with a default or `required` are always present. */
export type OptionValues<O extends OptionTable> = {
  -readonly [
    K in keyof O as O[K] extends OptionSpec<unknown, true> ? K : never
  ]: O[K] extends OptionSpec<infer T> ? T : never;
} & {
  -readonly [
    K in keyof O as O[K] extends OptionSpec<unknown, true> ? never : K
  ]?: O[K] extends OptionSpec<infer T> ? T : never;
};

/** snake_case → camelCase, in types (`learning_rate` → `learningRate`). */
export type Camel<S extends string> = S extends `${infer H}_${infer T}`
  ? `${H}${Capitalize<Camel<T>>}`
  : S;
export type CamelKeys<T> = { [K in keyof T as K extends string ? Camel<K> : K]: T[K] };

/** `learning_rate` → `learningRate`. */
export function camel(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `learning_rate` → `--learning-rate`. */
export function flagName(key: string): string {
  return `--${key.replaceAll('_', '-')}`;
}

/** Levenshtein distance (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The known key closest to `key`, if it is close enough to be a likely typo. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  // A third of the key's length (at least 2) still reads as a misspelling, not another word.
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** "a=1,b=2" (flags) or a YAML mapping → string map. */
function toMap(value: unknown, where: string): Record<string, string> {
  if (typeof value === 'string') {
    const out: Record<string, string> = {};
    for (const part of value.split(',').filter(Boolean)) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new LoraforgeError(`${where} "${part}" is not NAME=VALUE`);
      out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    }
    return out;
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)]));
  }
  throw new LoraforgeError(`${where} must be a mapping (NAME=VALUE,...)`);
}

/** Converts a YAML or flag value to the option's type and checks its allowed values. */
export function coerceOption(s: OptionSpec, value: unknown, where: string): unknown {
  const bad = (what: string, hint?: string) =>
    new LoraforgeError(`${where} must be ${what} (got ${JSON.stringify(value)})`, hint);
  switch (s.kind) {
    case 'string': {
      if (typeof value === 'number' || typeof value === 'boolean') value = String(value);
      if (typeof value !== 'string') throw bad('a string');
      if (s.choices && !s.choices.includes(value)) {
        throw bad(`one of ${s.choices.join(', ')}`);
      }
      return value;
    }
    case 'number':
    case 'integer': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw bad('a number');
      if (s.kind === 'integer' && !Number.isInteger(n)) throw bad('a whole number');
      if (s.min !== undefined && n < s.min) throw bad(`>= ${s.min}`);
      if (s.above !== undefined && !(n > s.above)) throw bad(`> ${s.above}`);
      if (s.below !== undefined && !(n < s.below)) throw bad(`< ${s.below}`);
      if (s.max !== undefined && !(n <= s.max)) throw bad(`<= ${s.max}`);
      return n;
    }
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === '') return true;
      if (value === 'false' || value === '0') return false;
      throw bad('true or false');
    case 'map':
      return toMap(value, where);
  }
}

/** One source of values (a file, the command line) and the name errors give for it. */
export interface OptionLayer {
  values: Record<string, unknown>;
  source: string;
}

/**
 * Defaults, then each layer in order (later ones win), every value checked; unknown keys fail
 * with the nearest known key as a hint. Keys may be spelled with `-` (flags) or `_`.
 */
export function resolveOptions<O extends OptionTable>(
  table: O,
  layers: readonly OptionLayer[],
  unknownHint = 'see --help for the keys',
): OptionValues<O> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(table)) if (s.default !== undefined) out[key] = s.default;
  for (const { values, source } of layers) {
    for (const [rawKey, value] of Object.entries(values)) {
      // YAML's `key: null` (or `key:`) leaves the key unset, as in HF / LLaMA-Factory configs.
      if (value === undefined || value === null) continue;
      const key = rawKey.replaceAll('-', '_');
      const s = table[key];
      if (!s) {
        const near = nearestKey(key, Object.keys(table));
        throw new LoraforgeError(
          `${source}: unknown key "${rawKey}"`,
          near ? `did you mean ${near}?` : unknownHint,
        );
      }
      out[key] = coerceOption(s, value, `${source}: ${key}`);
    }
  }
  for (const [key, s] of Object.entries(table)) {
    if (s.required && (out[key] === undefined || out[key] === '')) {
      throw new LoraforgeError(
        `missing "${key}"`,
        `set it in the config file or pass ${flagName(key)}`,
      );
    }
  }
  return out as OptionValues<O>;
}

/** The table's defaults alone (every option without one is absent). */
export function optionDefaults<O extends OptionTable>(table: O): Partial<OptionValues<O>> {
  return Object.fromEntries(
    Object.entries(table)
      .filter(([, s]) => s.default !== undefined)
      .map(([k, s]) => [k, s.default]),
  ) as Partial<OptionValues<O>>;
}
