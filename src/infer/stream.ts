/**
 * Async-iterator streaming over the callback-based generation: `for await (const text of
 * streamChat(pipeline, messages))`. Leaving the loop early (break, return, throw) stops the
 * generation before its next token.
 */
import type { ChatMessage } from '../data/templates.ts';
import type { ChatPipeline } from './pipeline.ts';
import type { GenerateOptions, GenerationResult } from './text-generation.ts';

/** What a streamed generation hands to the underlying callback API. */
interface StreamHooks {
  onText: (delta: string) => void;
  shouldStop: () => boolean;
}

/**
 * Runs `generate` and yields its text deltas as they become final; the iterator's return value
 * is the generation's result (undefined when the consumer stopped early).
 */
export async function* streamGeneration(
  generate: (hooks: StreamHooks) => Promise<GenerationResult>,
): AsyncGenerator<string, GenerationResult | undefined> {
  const pending: string[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let stopped = false;
  const done = generate({
    onText: (delta) => {
      pending.push(delta);
      wake?.();
    },
    shouldStop: () => stopped,
  }).finally(() => {
    finished = true;
    wake?.();
  });
  try {
    for (;;) {
      while (pending.length > 0) yield pending.shift()!;
      if (finished) return await done;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    // The consumer left early: stop at the next token and let the generation settle (and free
    // its sequence) before the caller continues; its error, if any, is already being thrown.
    stopped = true;
    await done.catch(() => undefined);
  }
}

/** Combines the caller's own stop condition with the stream's. */
function withHooks(opts: GenerateOptions, hooks: StreamHooks): GenerateOptions {
  return {
    ...opts,
    onText: (delta) => {
      opts.onText?.(delta);
      hooks.onText(delta);
    },
    shouldStop: () => hooks.shouldStop() || (opts.shouldStop?.() ?? false),
  };
}

/** The assistant's reply to `messages`, streamed as text deltas. */
export function streamChat(
  pipeline: ChatPipeline,
  messages: ChatMessage[],
  opts: GenerateOptions = {},
): AsyncGenerator<string, GenerationResult | undefined> {
  return streamGeneration((hooks) => pipeline.chat(messages, withHooks(opts, hooks)));
}

/** A plain continuation of `prompt` (no template), streamed as text deltas. */
export function streamCompletion(
  pipeline: ChatPipeline,
  prompt: string,
  opts: GenerateOptions = {},
): AsyncGenerator<string, GenerationResult | undefined> {
  return streamGeneration((hooks) => pipeline.complete(prompt, withHooks(opts, hooks)));
}
