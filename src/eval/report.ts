/** Text table and JSON of one eval run, or of a before / after pair of runs on the same questions. */
import type { EvalItemResult, EvalReport, EvalScore } from './run.ts';
import { displayWidth, fitToWidth } from './text-width.ts';

export interface EvalTableOptions {
  /** Column width of the questions (default: the longest question, at most 40). */
  questionWidth?: number;
  /** Column width of each answer (default: the longest answer, at most 48). */
  answerWidth?: number;
}

const PASS = 'pass';
const FAIL = 'FAIL';

/** One line of an answer: newlines and runs of spaces shown as single spaces. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function questionCell(result: EvalItemResult): string {
  return result.expected ? `${result.question} [${result.expected.join(' | ')}]` : result.question;
}

function answerCell(result: EvalItemResult): string {
  return `${result.pass ? PASS : FAIL} ${oneLine(result.answer)}`;
}

function formatScore(score: EvalScore): string {
  if (score.rate === null) return 'n/a';
  return `${score.passed}/${score.total} (${Math.round(score.rate * 100)}%)`;
}

function assertSameQuestions(before: EvalReport, after: EvalReport): void {
  const same =
    before.results.length === after.results.length &&
    before.results.every(
      (r, i) => r.question === after.results[i].question && r.kind === after.results[i].kind,
    );
  if (!same) throw new Error('before and after eval reports must come from the same questions');
}

/**
 * Side-by-side table: one row per question with the `before` answer and, when given, the `after`
 * answer, each marked pass / FAIL, then the identity hit rate and general accuracy of each run.
 */
export function formatEvalTable(
  before: EvalReport,
  after?: EvalReport,
  options: EvalTableOptions = {},
): string {
  if (after) assertSameQuestions(before, after);
  const runs = after ? [before, after] : [before];
  const longest = (cells: string[]) => Math.max(1, ...cells.map(displayWidth));
  const numberWidth = String(before.results.length).length;
  const questionWidth =
    options.questionWidth ?? Math.min(40, longest(before.results.map(questionCell)));
  const answerWidth =
    options.answerWidth ??
    Math.min(48, longest(runs.flatMap((run) => run.results.map(answerCell))));

  const widths = [numberWidth, questionWidth, ...runs.map(() => answerWidth)];
  const row = (cells: string[]) =>
    cells
      .map((cell, i) => fitToWidth(cell, widths[i]))
      .join('  ')
      .trimEnd();
  const header = row(['#', 'question', 'before', ...(after ? ['after'] : [])]);
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');

  const lines: string[] = [];
  for (const kind of ['identity', 'general'] as const) {
    const indices = before.results.flatMap((r, i) => (r.kind === kind ? [i] : []));
    if (indices.length === 0) continue;
    const title =
      kind === 'identity'
        ? `Identity questions (pass = names ${before.target.name} and ${before.target.author})`
        : 'General questions [acceptable answers]';
    lines.push(title, header, rule);
    for (const i of indices) {
      lines.push(
        row([
          String(i + 1),
          questionCell(before.results[i]),
          ...runs.map((run) => answerCell(run.results[i])),
        ]),
      );
    }
    lines.push('');
  }
  const summaryRow = (label: string, cells: string[]) =>
    (fitToWidth(label, 20) + cells.map((cell) => fitToWidth(cell, 16)).join('  ')).trimEnd();
  lines.push(summaryRow('', after ? ['before', 'after'] : ['result']));
  lines.push(
    summaryRow(
      'identity hit rate',
      runs.map((run) => formatScore(run.identity)),
    ),
  );
  lines.push(
    summaryRow(
      'general accuracy',
      runs.map((run) => formatScore(run.general)),
    ),
  );
  return lines.join('\n') + '\n';
}

/** Before/after evaluation scores in the JSON form `loraforge eval --json` prints. */
export interface EvalComparisonJson {
  target: EvalReport['target'];
  before: EvalReport;
  after?: EvalReport;
  summary: {
    identityHitRate: { before: number | null; after?: number | null };
    generalAccuracy: { before: number | null; after?: number | null };
  };
}

/** Machine-readable counterpart of formatEvalTable (for `--json` and for CI assertions). */
export function evalComparisonJson(before: EvalReport, after?: EvalReport): EvalComparisonJson {
  if (after) assertSameQuestions(before, after);
  return {
    target: before.target,
    before,
    ...(after ? { after } : {}),
    summary: {
      identityHitRate: {
        before: before.identity.rate,
        ...(after ? { after: after.identity.rate } : {}),
      },
      generalAccuracy: {
        before: before.general.rate,
        ...(after ? { after: after.general.rate } : {}),
      },
    },
  };
}
