/** Streaming detokenization for generation (no file system: used in Node and in the page). */
import type { Tokenizer } from './hf-tokenizer.ts';

export interface TextStreamer {
  /** Adds one generated id; returns the text it completes (often '', e.g. mid UTF-8 character). */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete character decodes to U+FFFD here). */
  flush(): string;
}

/**
 * Incremental detokenizer. Decoding token by token breaks multi-byte characters (one emoji can
 * span several byte-level tokens) and, for SentencePiece-style decoders, the leading space of a
 * word, so it re-decodes a short window that starts one already-emitted chunk back and only
 * emits once the window no longer ends in a partial character (U+FFFD).
 */
export function createTextStreamer(
  tokenizer: Tokenizer,
  opts: { skipSpecialTokens?: boolean } = {},
): TextStreamer {
  const decodeOpts = { skipSpecialTokens: opts.skipSpecialTokens ?? true };
  // The last emitted chunk's ids (decoding context) followed by the ids not emitted yet.
  let window: number[] = [];
  let emitted = 0; // how many ids at the start of `window` were already emitted

  const decodeWindow = (): { prefix: string; full: string } => ({
    prefix: tokenizer.decode(window.slice(0, emitted), decodeOpts),
    full: tokenizer.decode(window, decodeOpts),
  });

  return {
    push(id: number): string {
      window.push(id);
      const { prefix, full } = decodeWindow();
      if (full.length <= prefix.length || full.endsWith('\uFFFD')) return '';
      window = window.slice(emitted);
      emitted = window.length;
      return full.slice(prefix.length);
    },
    flush(): string {
      const { prefix, full } = decodeWindow();
      window = [];
      emitted = 0;
      return full.slice(prefix.length);
    },
  };
}
