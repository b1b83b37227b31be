/**
 * `loraforge eval`: with --adapter, before and after. Three modes: the identity check (does the
 * answer name the new name and author), general QA (normalised exact match against acceptable
 * answers), both from a question file such as examples/identity-eval.json; and held-out loss +
 * perplexity on any dataset (alpaca / sharegpt / openai records, under the training template).
 */
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Option, type Command } from 'commander';
import {
  type ChatPipeline,
  evalComparisonJson,
  type EvalReport,
  type EvalSet,
  evaluateModel,
  formatEvalTable,
  formatLossTable,
  heldOutLoss,
  type HeldOutLoss,
  type IdentityTarget,
  isEvalSetFile,
  loadDataset,
  loadEvalSet,
  LoraAdapter,
  LoraforgeError,
  parseAssignments,
  ProgressBar,
  readAdapterMeta,
  recordedTarget,
} from '../../index.ts';
import { addModelOptions, loadPipeline, parseInteger, type ModelFlags } from '../options.ts';

const MODES = ['auto', 'questions', 'identity', 'qa', 'loss'] as const;
type Mode = (typeof MODES)[number];

interface EvalFlags extends ModelFlags {
  data: string;
  mode: Mode;
  name?: string;
  author?: string;
  maxNewTokens: number;
  json?: string;
  cutoffLen?: number;
  split: 'all' | 'validation';
  set: string[];
}

/** Evaluates with a progress bar. */
export function evaluateWithProgress(
  pipeline: ChatPipeline,
  set: EvalSet,
  target: IdentityTarget | undefined,
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

/** Runs `measure` on the base model and, with an adapter, again with it attached. */
async function beforeAfter<T>(
  pipeline: ChatPipeline,
  measure: (label: string) => Promise<T>,
): Promise<{ before: T; after?: T }> {
  if (!pipeline.adapter) return { before: await measure('model') };
  LoraAdapter.detach(pipeline.model);
  const before = await measure('base');
  pipeline.adapter.attach(pipeline.model, { frozen: true });
  return { before, after: await measure('adapter') };
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description(
      'score a model (with --adapter: before and after): identity check and general QA from a question file, or held-out loss and perplexity on a dataset',
    )
    .requiredOption(
      '-d, --data <file>',
      'question file (see examples/identity-eval.json) or dataset (.json, .jsonl, .csv)',
    )
    .addOption(
      new Option(
        '--mode <mode>',
        'auto (questions for a question file, loss for a dataset) | questions (identity + qa) | identity | qa | loss',
      )
        .choices(MODES)
        .default('auto'),
    )
    .option('--name <name>', "identity check: the new name (default: the adapter's --set name)")
    .option(
      '--author <author>',
      "identity check: the new author (default: the adapter's --set author)",
    )
    .option('--max-new-tokens <n>', 'answer length limit', parseInteger, 64)
    .option(
      '--cutoff-len <n>',
      "loss: truncate examples (default: the adapter's, else 256)",
      parseInteger,
    )
    .addOption(
      new Option(
        '--split <split>',
        "loss: all records, or only the validation split the adapter's training held out (its val_size and seed)",
      )
        .choices(['all', 'validation'])
        .default('all'),
    )
    .option(
      '--set <name=value>',
      "loss: values for {{name}} placeholders (default: the adapter's)",
      (value: string, previous: string[]) => [...previous, value],
      [],
    )
    .option('--json <file>', 'also write the results as JSON');
  addModelOptions(cmd);
  cmd.action(async (flags: EvalFlags) => {
    const mode =
      flags.mode === 'auto' ? (isEvalSetFile(flags.data) ? 'questions' : 'loss') : flags.mode;
    const meta = flags.adapter ? readAdapterMeta(flags.adapter) : {};
    const output =
      mode === 'loss'
        ? await evalLoss(flags, meta.trainConfig as TrainedWith | undefined)
        : await evalQuestions(flags, mode, meta);
    process.stdout.write(output.text + '\n');
    if (flags.json) writeFileSync(flags.json, JSON.stringify(output.json, null, 2) + '\n');
  });
}

async function evalQuestions(
  flags: EvalFlags,
  mode: 'questions' | 'identity' | 'qa',
  meta: Record<string, unknown>,
): Promise<{ text: string; json: unknown }> {
  const full = loadEvalSet(flags.data);
  const set: EvalSet = {
    identity: mode === 'qa' ? [] : full.identity,
    general: mode === 'identity' ? [] : full.general,
  };
  if (set.identity.length + set.general.length === 0)
    throw new LoraforgeError(
      `${flags.data}: no ${mode === 'qa' ? 'general' : 'identity'} questions`,
    );
  let target: IdentityTarget | undefined;
  if (set.identity.length > 0) {
    const recorded = recordedTarget(meta);
    const name = flags.name ?? recorded?.name;
    const author = flags.author ?? recorded?.author;
    if (!name || !author) {
      throw new LoraforgeError(
        'the identity check needs the name and author to look for',
        'pass --name and --author (or an adapter trained with --set name=…,author=…), or --mode qa for the general questions only',
      );
    }
    target = { name, author };
  }
  const pipeline = await loadPipeline(flags);
  try {
    const { before, after } = await beforeAfter(pipeline, (label) =>
      evaluateWithProgress(pipeline, set, target, label, flags.maxNewTokens),
    );
    return { text: formatEvalTable(before, after), json: evalComparisonJson(before, after) };
  } finally {
    pipeline.dispose();
  }
}

/** What the adapter's loraforge.json says about its training data. */
interface TrainedWith {
  dataset?: string;
  cutoff_len?: number;
  val_size?: number;
  seed?: number;
  set?: Record<string, string>;
}

async function evalLoss(
  flags: EvalFlags,
  trained: TrainedWith | undefined,
): Promise<{ text: string; json: unknown }> {
  if (flags.split === 'validation' && !trained) {
    throw new LoraforgeError(
      '--split validation needs the training run of an adapter (its val_size and seed)',
      'pass --adapter, or --split all',
    );
  }
  const files = flags.data.split(',').map((file) => file.trim());
  if (flags.split === 'validation' && trained?.dataset && !sameFiles(files, trained.dataset)) {
    process.stderr.write(
      `warning: the adapter was trained on ${trained.dataset}; its held-out split is reproduced only with the same --data\n`,
    );
  }
  const pipeline = await loadPipeline(flags);
  try {
    const set = flags.set.length ? parseAssignments(flags.set) : trained?.set;
    const dataset = await loadDataset({
      files,
      template: pipeline.template,
      cutoffLen: flags.cutoffLen ?? trained?.cutoff_len,
      valSize: flags.split === 'validation' ? trained?.val_size : 0,
      seed: trained?.seed,
      placeholders: set,
    });
    const examples = flags.split === 'validation' ? dataset.validation : dataset.train;
    if (examples.length === 0)
      throw new LoraforgeError(`${flags.data}: no examples in the ${flags.split} split`);
    const { before, after } = await beforeAfter(pipeline, (label) => {
      const bar = new ProgressBar({ total: examples.length, label, unit: 'ex' });
      return heldOutLoss(pipeline.model, examples, (done) => bar.update(done)).finally(() =>
        bar.done(),
      );
    });
    const runs: [string, HeldOutLoss][] = after
      ? [
          ['base', before],
          ['adapter', after],
        ]
      : [['model', before]];
    const title = `held-out loss on ${flags.data} (${flags.split}, template ${pipeline.template.name})`;
    return {
      text: formatLossTable(title, runs),
      json: { data: flags.data, split: flags.split, ...Object.fromEntries(runs) },
    };
  } finally {
    pipeline.dispose();
  }
}

/** Same files by name and order (the recorded paths may be relative to another folder). */
function sameFiles(files: string[], recorded: string): boolean {
  const names = (list: string[]) => list.map((file) => basename(file.trim())).join(',');
  return names(files) === names(recorded.split(','));
}
