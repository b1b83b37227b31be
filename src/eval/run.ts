/** Asks a model every question of an eval set and scores the answers. */
import type { EvalSet } from './eval-set.ts';
import { scoreGeneral, scoreIdentity, type IdentityTarget } from './match.ts';

/** One question, the answer given and whether it passed. */
export interface EvalItemResult {
  kind: 'identity' | 'general';
  question: string;
  answer: string;
  pass: boolean;
  /** Acceptable answers of a general question. */
  expected?: string[];
  lang?: string;
}

/** Passed / total for one kind of question (rate null when there were none). */
export interface EvalScore {
  passed: number;
  total: number;
  /** passed / total; null when the set has no question of this kind. */
  rate: number | null;
}

/** Every question's result and the pass rates per kind. */
export interface EvalReport {
  target: IdentityTarget;
  /** Identity questions first, then general ones, each in file order. */
  results: EvalItemResult[];
  identity: EvalScore;
  general: EvalScore;
}

export interface RunEvalOptions {
  /** The name and author the identity answers must mention. */
  target: IdentityTarget;
  /** Called after each answer, e.g. to drive a progress bar. */
  onResult?: (result: EvalItemResult, done: number, total: number) => void;
}

/** The model under evaluation: a question in, its answer out. */
export type AnswerFn = (question: string) => Promise<string>;

function score(results: EvalItemResult[], kind: EvalItemResult['kind']): EvalScore {
  const ofKind = results.filter((r) => r.kind === kind);
  const passed = ofKind.filter((r) => r.pass).length;
  return { passed, total: ofKind.length, rate: ofKind.length ? passed / ofKind.length : null };
}

/** Questions are asked one at a time, in order, so a run is reproducible with greedy decoding. */
export async function runEval(
  set: EvalSet,
  answerFn: AnswerFn,
  options: RunEvalOptions,
): Promise<EvalReport> {
  const total = set.identity.length + set.general.length;
  const results: EvalItemResult[] = [];
  const record = (result: EvalItemResult) => {
    results.push(result);
    options.onResult?.(result, results.length, total);
  };
  for (const { question, lang } of set.identity) {
    const answer = await answerFn(question);
    record({
      kind: 'identity',
      question,
      answer,
      pass: scoreIdentity(answer, options.target),
      lang,
    });
  }
  for (const { question, expected, lang } of set.general) {
    const answer = await answerFn(question);
    record({
      kind: 'general',
      question,
      answer,
      pass: scoreGeneral(answer, expected),
      expected,
      lang,
    });
  }
  return {
    target: options.target,
    results,
    identity: score(results, 'identity'),
    general: score(results, 'general'),
  };
}
