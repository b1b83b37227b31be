/**
 * A prompt too long for the context is refused by its byte length, before it is tokenized:
 * tokenizing runs on the event loop, and a 1 MB prompt would hold every stream (and /health)
 * for about a second. No token covers more than the tokenizer's longest token, so a prompt of
 * more than maxContext × that many bytes cannot fit: the check never refuses one that would.
 */
import { ApiError } from './api-error.ts';
import type { DrainAbove } from './http-io.ts';
import type { ChatMessage, ServeEngine } from './engine.ts';

function promptTooLarge(engine: ServeEngine, size: string, param?: string): ApiError {
  return new ApiError(
    413,
    `The prompt is ${size}; this server takes at most ${engine.maxPromptBytes} bytes of prompt ` +
      `(its context is ${engine.maxContext} tokens). Please shorten the prompt.`,
    'invalid_request_error',
    'prompt_too_large',
    param,
  );
}

/** Throws a 413 naming the limit when `texts` together are over the engine's prompt bytes. */
export function checkPromptBytes(
  engine: ServeEngine,
  texts: readonly string[],
  param: string,
): void {
  let bytes = 0;
  for (const text of texts) bytes += Buffer.byteLength(text, 'utf8');
  if (bytes > engine.maxPromptBytes) throw promptTooLarge(engine, `${bytes} bytes`, param);
}

/**
 * Room in a request body for what is not prompt text (sampling fields, role names, JSON syntax):
 * a completion body larger than the prompt limit plus this holds a prompt that cannot fit.
 */
const NON_PROMPT_BYTES = 64 * 1024;

/** For readJsonObject: completion bodies too large to hold a prompt that fits are not parsed. */
export function promptBodyDrain(engine: ServeEngine): DrainAbove {
  const bytes = engine.maxPromptBytes + NON_PROMPT_BYTES;
  return { bytes, error: () => promptTooLarge(engine, `in a body of more than ${bytes} bytes`) };
}

/** The message texts every chat template renders in full (assistant turns may be shortened). */
export function renderedTexts(messages: readonly ChatMessage[]): string[] {
  return messages.filter((m) => m.role !== 'assistant').map((m) => m.content);
}
