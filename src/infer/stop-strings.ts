/**
 * Finds stop strings in streamed text. Text that might be the start of a stop string is held back
 * until the next delta settles it, so a stop string is never sent to a client, even when it
 * arrives split across tokens.
 */
export class StopStringMatcher {
  private pending = '';
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  get hasStopped(): boolean {
    return this.stopped;
  }

  /** Returns the text that is safe to emit now. After a stop string is seen, returns ''. */
  push(delta: string): string {
    if (this.stopped) return '';
    const text = this.pending + delta;
    const cut = this.firstStopIndex(text);
    if (cut >= 0) {
      this.stopped = true;
      this.pending = '';
      return text.slice(0, cut);
    }
    const hold = this.longestPrefixSuffix(text);
    this.pending = text.slice(text.length - hold);
    return text.slice(0, text.length - hold);
  }

  /** End of generation: whatever was held back was not a stop string after all. */
  flush(): string {
    const rest = this.stopped ? '' : this.pending;
    this.pending = '';
    return rest;
  }

  private firstStopIndex(text: string): number {
    let first = -1;
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    return first;
  }

  /** Length of the longest tail of `text` that is a proper prefix of some stop string. */
  private longestPrefixSuffix(text: string): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let len = Math.min(stop.length - 1, text.length); len > best; len--) {
        if (text.endsWith(stop.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}
