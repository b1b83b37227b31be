/** Runs an eval set against a loaded chat pipeline (greedy answers, one question at a time). */
import type { ChatPipeline } from '../infer/pipeline.ts';
import type { EvalSet } from './eval-set.ts';
import type { IdentityTarget } from './match.ts';
import { runEval, type EvalItemResult, type EvalReport } from './run.ts';

/** Answer length and a per-answer callback. */
export interface EvaluateOptions {
  maxNewTokens?: number;
  /** Called after each answer, e.g. for a progress bar. */
  onResult?: (result: EvalItemResult, done: number, total: number) => void;
}

/** Asks every question of `set` through `pipeline` (greedy) and scores the answers. */
export function evaluateModel(
  pipeline: ChatPipeline,
  set: EvalSet,
  target: IdentityTarget,
  opts: EvaluateOptions = {},
): Promise<EvalReport> {
  return runEval(
    set,
    async (question) =>
      (
        await pipeline.chat([{ role: 'user', content: question }], {
          maxNewTokens: opts.maxNewTokens ?? 64,
        })
      ).text.trim(),
    { target, onResult: opts.onResult },
  );
}

/** Name and author an adapter was trained to say, from its recorded `--set` values. */
export function recordedTarget(meta: { [key: string]: unknown }): IdentityTarget | undefined {
  const set = (meta.trainConfig as { set?: Record<string, string> } | undefined)?.set;
  return set?.name && set.author ? { name: set.name, author: set.author } : undefined;
}
