/**
 * Text generation on top of the sequence decoder: stop tokens, stop strings (never shown to the
 * user, even when split across tokens), streaming deltas and a token budget.
 */
import type { Tokenizer } from '../io/tokenizer.ts';
import { createTextStreamer } from '../io/tokenizer.ts';
import type { LoraLookup } from '../models/decoder.ts';
import type { SamplingOptions } from './sampling.ts';
import type { SequenceDecoder } from './sequences.ts';
import { StopStringMatcher } from './stop-strings.ts';

/** Sampling, length and stop conditions of one generation, and its text callback. */
export interface GenerateOptions extends SamplingOptions {
  maxNewTokens?: number;
  stopStrings?: string[];
  stopTokenIds?: number[];
  /** Receives text as it becomes final. */
  onText?: (delta: string) => void;
  /** Checked before every token; return true to stop early (e.g. a closed connection). */
  shouldStop?: () => boolean;
}

/** The generated text and tokens, the prompt length and why generation ended. */
export interface GenerationResult {
  text: string;
  tokenIds: number[];
  promptTokens: number;
  finishReason: 'stop' | 'length';
}

export const DEFAULT_MAX_NEW_TOKENS = 256;

export async function generateText(
  decoder: SequenceDecoder,
  tokenizer: Tokenizer,
  promptIds: number[],
  opts: GenerateOptions = {},
  lora: LoraLookup | null = null,
): Promise<GenerationResult> {
  const maxNewTokens = opts.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS;
  const stopIds = new Set(
    opts.stopTokenIds ?? (tokenizer.eosTokenId !== undefined ? [tokenizer.eosTokenId] : []),
  );
  const streamer = createTextStreamer(tokenizer);
  const matcher = new StopStringMatcher(opts.stopStrings ?? []);
  const room = Math.min(maxNewTokens, decoder.maxContext - promptIds.length);
  const seq = decoder.start(promptIds, opts, lora, room);
  const tokenIds: number[] = [];
  let text = '';
  const emit = (delta: string) => {
    if (!delta) return;
    text += delta;
    opts.onText?.(delta);
  };
  let finishReason: GenerationResult['finishReason'] = 'length';
  try {
    while (tokenIds.length < room) {
      if (opts.shouldStop?.()) {
        finishReason = 'stop';
        break;
      }
      const [token] = await decoder.step([seq]);
      if (token === null) continue; // a prefill chunk: no token yet
      if (stopIds.has(token!)) {
        finishReason = 'stop';
        break;
      }
      tokenIds.push(token!);
      emit(matcher.push(streamer.push(token!)));
      if (matcher.hasStopped) {
        finishReason = 'stop';
        break;
      }
    }
    emit(matcher.push(streamer.flush()));
    emit(matcher.flush());
  } finally {
    decoder.release(seq);
  }
  return { text, tokenIds, promptTokens: promptIds.length, finishReason };
}
