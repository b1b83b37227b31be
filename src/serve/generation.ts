/** One request's generation as text: token ids -> detokenized deltas -> stop strings trimmed. */
import type { SequenceRequest, ServeEngine } from './engine.ts';
import type { FinishReason, Scheduler } from './scheduler.ts';
import { StopStringMatcher } from '../infer/stop-strings.ts';

export interface TextGenerationRequest {
  sequence: SequenceRequest;
  stop: string[];
}

export interface TextGenerationResult {
  /** The whole text when no `onText` callback was given, '' otherwise (streamed text is not kept). */
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
}

/** Runs a request through the scheduler; `onText` receives the text as it becomes final. */
export async function generateText(
  scheduler: Scheduler,
  engine: ServeEngine,
  request: TextGenerationRequest,
  onText: ((delta: string) => void) | null,
  signal: AbortSignal,
): Promise<TextGenerationResult> {
  const streamer = engine.decodeStreamer();
  const matcher = new StopStringMatcher(request.stop);
  let text = '';
  const emit = (delta: string) => {
    if (delta === '') return;
    if (onText) onText(delta);
    else text += delta;
  };
  const outcome = await scheduler.submit(
    {
      sequence: request.sequence,
      onToken: (tokenId) => {
        emit(matcher.push(streamer.push(tokenId)));
        return !matcher.hasStopped;
      },
    },
    signal,
  );
  if (!matcher.hasStopped) emit(matcher.push(streamer.flush()));
  emit(matcher.flush());
  return {
    text,
    finishReason: matcher.hasStopped ? 'stop' : outcome.finishReason,
    promptTokens: request.sequence.promptIds.length,
    completionTokens: outcome.completionTokens,
  };
}
