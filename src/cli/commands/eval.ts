/** `loraforge eval`: identity hit rate and general accuracy, before and after an adapter. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  type ChatPipeline,
  evalComparisonJson,
  type EvalReport,
  evaluateModel,
  formatEvalTable,
  type IdentityTarget,
  loadEvalSet,
  LoraAdapter,
  LoraforgeError,
  ProgressBar,
  readAdapterMeta,
  recordedTarget,
} from '../../index.ts';
import { addModelOptions, loadPipeline, parseInteger, type ModelFlags } from '../options.ts';

/** Evaluates with a progress bar. */
export function evaluateWithProgress(
  pipeline: ChatPipeline,
  set: Parameters<typeof evaluateModel>[1],
  target: IdentityTarget,
  label: string,
  maxNewTokens = 64,
): Promise<EvalReport> {
  const bar = new ProgressBar({
    total: set.identity.length + set.general.length,
    label,
    unit: 'q',
  });
  return evaluateModel(pipeline, set, target, {
    maxNewTokens,
    onResult: (_, done) => bar.update(done),
  }).finally(() => bar.done());
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description(
      'answer an eval set (identity + general questions) and score it; with --adapter, before and after',
    )
    .requiredOption('-d, --data <file>', 'eval set JSON (see examples/identity-eval.json)')
    .option('--name <name>', "the identity's new name (default: the adapter's recorded --set name)")
    .option(
      '--author <author>',
      "the identity's new author (default: the adapter's recorded --set author)",
    )
    .option('--max-new-tokens <n>', 'answer length limit', parseInteger, 64)
    .option('--json <file>', 'also write the results as JSON');
  addModelOptions(cmd);
  cmd.action(
    async (
      flags: ModelFlags & {
        data: string;
        name?: string;
        author?: string;
        maxNewTokens: number;
        json?: string;
      },
    ) => {
      const set = loadEvalSet(flags.data);
      const recorded = flags.adapter ? recordedTarget(readAdapterMeta(flags.adapter)) : undefined;
      const name = flags.name ?? recorded?.name;
      const author = flags.author ?? recorded?.author;
      if (!name || !author) {
        throw new LoraforgeError(
          'no identity to check for',
          'pass --name and --author (or an adapter trained with --set name=…,author=…)',
        );
      }
      const target = { name, author };
      const pipeline = await loadPipeline(flags);
      let before: EvalReport;
      let after: EvalReport | undefined;
      if (pipeline.adapter) {
        LoraAdapter.detach(pipeline.model);
        before = await evaluateWithProgress(pipeline, set, target, 'base', flags.maxNewTokens);
        pipeline.adapter.attach(pipeline.model);
        after = await evaluateWithProgress(pipeline, set, target, 'adapter', flags.maxNewTokens);
      } else {
        before = await evaluateWithProgress(pipeline, set, target, 'model', flags.maxNewTokens);
      }
      process.stdout.write(formatEvalTable(before, after) + '\n');
      if (flags.json)
        writeFileSync(
          flags.json,
          JSON.stringify(evalComparisonJson(before, after), null, 2) + '\n',
        );
      pipeline.dispose();
    },
  );
}
