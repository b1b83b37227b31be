/**
 * Dependency-free progress bar for training, downloads and evaluation.
 *
 * On a terminal it redraws one line in place (at most ~10 times a second, so a fast loop does not
 * spend its time writing escape codes). When the stream is not a TTY (CI logs, files, pipes) it
 * prints a plain line now and then instead, because carriage-return redraws would flood the log.
 */
import { formatCount, formatDuration, formatRate } from './format.ts';

/** The subset of a Node write stream the bar needs. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressBarOptions {
  /** Number of units at 100 %; undefined when unknown (no percentage, bar or ETA). */
  total?: number;
  label?: string;
  /** Defaults to process.stderr so progress never mixes into piped stdout output. */
  stream?: ProgressStream;
  /** Unit name shown in the rate, e.g. 'step', 'tok', 'B'. */
  unit?: string;
  /** How counts are printed, e.g. formatBytes for downloads. */
  formatValue?: (n: number) => string;
  /** Seconds between plain lines when the stream is not a TTY. */
  plainInterval?: number;
  /** Count already done when the bar starts (a resumed run); otherwise the first update() sets it. */
  start?: number;
  /** false: draw nothing (log() still prints its messages); default true. */
  enabled?: boolean;
  /** Clock in milliseconds; replaceable for tests. */
  now?: () => number;
}

const TTY_REDRAW_MS = 100;
const BAR_WIDTH = 24;

/** A one-line terminal progress bar (count, rate, ETA) on stderr. */
export class ProgressBar {
  private readonly stream: ProgressStream;
  private readonly isTTY: boolean;
  private readonly now: () => number;
  private readonly startTime: number;
  /**
   * Count and time the rate is measured from (`start`, else the first update()), so a resumed
   * run at step 500 does not report 500 steps done in its first second.
   */
  private baseline: { time: number; value: number } | undefined;
  private current = 0;
  private fields: Record<string, string> = {};
  private lastDraw = -Infinity;
  private lineVisible = false;
  private finished = false;

  constructor(private readonly options: ProgressBarOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.isTTY = this.stream.isTTY === true;
    this.now = options.now ?? (() => performance.now());
    this.startTime = this.now();
    if (options.start !== undefined) {
      this.current = options.start;
      this.baseline = { time: this.startTime, value: options.start };
    }
  }

  /** Sets the absolute count (not an increment) and, optionally, extra fields such as loss / lr. */
  update(current: number, fields?: Record<string, string>): void {
    if (this.finished) return;
    this.current = current;
    this.baseline ??= { time: this.now(), value: current };
    if (fields) this.fields = { ...this.fields, ...fields };
    const interval = this.isTTY ? TTY_REDRAW_MS : (this.options.plainInterval ?? 10) * 1000;
    if (this.now() - this.lastDraw >= interval) this.draw();
  }

  /** Adds `delta` to the count. */
  tick(delta = 1, fields?: Record<string, string>): void {
    this.update(this.current + delta, fields);
  }

  /** Prints a message line without garbling the bar (the bar is redrawn below it on a TTY). */
  log(message: string): void {
    if (this.isTTY && this.lineVisible) this.stream.write('\r\x1b[K');
    this.stream.write(message.endsWith('\n') ? message : `${message}\n`);
    this.lineVisible = false;
    if (this.isTTY && !this.finished) this.draw();
  }

  /** Draws the final state and ends the line; later updates are ignored. */
  done(fields?: Record<string, string>): void {
    if (this.finished) return;
    if (fields) this.fields = { ...this.fields, ...fields };
    this.draw();
    if (this.lineVisible) this.stream.write('\n');
    this.finished = true;
  }

  /** The text of the current progress line (without terminal control codes). */
  render(): string {
    const { total, label, unit = 'it', formatValue = formatCount } = this.options;
    const now = this.now();
    const elapsed = (now - this.startTime) / 1000;
    const measured = this.baseline ? (now - this.baseline.time) / 1000 : 0;
    const rate = measured > 0 ? (this.current - this.baseline!.value) / measured : 0;
    const parts: string[] = [];
    if (label) parts.push(label);
    if (total !== undefined && total > 0) {
      const fraction = Math.min(1, Math.max(0, this.current / total));
      if (this.isTTY) parts.push(`[${bar(fraction)}]`);
      parts.push(
        `${(fraction * 100).toFixed(0).padStart(3)}%`,
        `${formatValue(this.current)}/${formatValue(total)}`,
      );
    } else {
      parts.push(formatValue(this.current));
    }
    parts.push(formatRate(rate, unit));
    if (total !== undefined && rate > 0 && this.current < total) {
      parts.push(`ETA ${formatDuration((total - this.current) / rate)}`);
    } else {
      parts.push(`in ${formatDuration(elapsed)}`);
    }
    for (const [key, value] of Object.entries(this.fields)) parts.push(`${key}=${value}`);
    return parts.join('  ');
  }

  private draw(): void {
    if (this.options.enabled === false) return;
    this.lastDraw = this.now();
    const line = this.render();
    if (this.isTTY) {
      // Stay within one terminal row; a wrapped line cannot be redrawn with '\r'.
      const width = Math.max(20, (this.stream.columns ?? 100) - 1);
      this.stream.write(`\r${line.slice(0, width)}\x1b[K`);
      this.lineVisible = true;
    } else {
      this.stream.write(`${line}\n`);
    }
  }
}

function bar(fraction: number): string {
  const filled = Math.round(fraction * BAR_WIDTH);
  if (filled >= BAR_WIDTH) return '='.repeat(BAR_WIDTH);
  return '='.repeat(filled) + '>' + ' '.repeat(BAR_WIDTH - filled - 1);
}
