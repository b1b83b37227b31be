/** The question file of `loraforge eval` (see examples/identity-eval.json) and its validation. */
import { readFileSync } from 'node:fs';
import { LoraforgeError } from '../util/errors.ts';

export interface IdentityQuestion {
  question: string;
  /** Informational ('en', 'zh', ...); scoring does not depend on it. */
  lang?: string;
}

export interface GeneralQuestion {
  question: string;
  /** Acceptable answers; the answer must mention at least one of them. */
  expected: string[];
  lang?: string;
}

/** Held-out questions: identity ones (who are you?) and general ones with expected answers. */
export interface EvalSet {
  /** Questions whose answer must give the fine-tuned name and author. */
  identity: IdentityQuestion[];
  /** Questions the model should still answer after fine-tuning. */
  general: GeneralQuestion[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isNonEmptyString = (value: unknown): value is string =>
  typeof value === 'string' && value.trim().length > 0;

/** Checks the shape of a parsed eval file; `source` names the file in error messages. */
export function parseEvalSet(data: unknown, source: string): EvalSet {
  const fail = (where: string, what: string): never => {
    throw new LoraforgeError(
      `${source}: ${where} ${what}`,
      'expected {"identity": [{"question": "..."}], "general": [{"question": "...", "expected": ["..."]}]}',
    );
  };
  if (!isRecord(data)) return fail('top level', 'is not a JSON object');
  const list = (key: 'identity' | 'general'): unknown[] => {
    const value = data[key] ?? [];
    return Array.isArray(value) ? value : fail(key, 'is not an array');
  };
  const lang = (item: Record<string, unknown>, where: string): string | undefined => {
    if (item.lang === undefined) return undefined;
    return typeof item.lang === 'string' ? item.lang : fail(`${where}.lang`, 'is not a string');
  };
  const question = (
    item: unknown,
    where: string,
  ): { item: Record<string, unknown>; question: string } => {
    if (!isRecord(item)) return fail(where, 'is not an object');
    if (!isNonEmptyString(item.question)) return fail(`${where}.question`, 'is missing or empty');
    return { item, question: item.question };
  };

  const identity = list('identity').map((raw, i) => {
    const { item, question: q } = question(raw, `identity[${i}]`);
    return { question: q, lang: lang(item, `identity[${i}]`) };
  });
  const general = list('general').map((raw, i) => {
    const where = `general[${i}]`;
    const { item, question: q } = question(raw, where);
    const expected = item.expected;
    if (!Array.isArray(expected) || expected.length === 0 || !expected.every(isNonEmptyString)) {
      return fail(`${where}.expected`, 'must be a non-empty array of non-empty strings');
    }
    return { question: q, expected: [...expected], lang: lang(item, where) };
  });
  if (identity.length + general.length === 0) fail('file', 'has no questions');
  return { identity, general };
}

/** Reads and checks an eval set JSON file. */
export function loadEvalSet(path: string): EvalSet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new LoraforgeError(`cannot read eval file ${path}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new LoraforgeError(`${path}: invalid JSON (${(error as Error).message})`);
  }
  return parseEvalSet(data, path);
}
