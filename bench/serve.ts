/**
 * Load generator for the OpenAI-compatible server: N concurrent streaming chat clients for D
 * seconds against 127.0.0.1, once with continuous batching (--max-batch) and once with
 * maxBatch=1, reporting requests/s, tokens/s, time-to-first-token and inter-token latency
 * percentiles, and process memory before/after each run.
 *
 *   npm run bench:serve [-- --model assets/tiny-chat --threads 2] [--clients 16] [--duration 30] [--max-tokens 64] [--max-batch 16] [--json]
 *   npm run bench:serve -- --fake   (a fake engine: measures the server alone)
 *
 * Clients run in this process, so their own parsing shares the CPU with the server; the
 * comparison between the two runs is fair, absolute numbers are a lower bound.
 */
import { parseArgs } from 'node:util';
import type { ServeEngine } from '../src/serve/engine.ts';
import { selectBackend } from '../src/engine/select-backend.ts';
import { ChatPipeline } from '../src/infer/pipeline.ts';
import { ModelServeEngine } from '../src/serve/model-engine.ts';
import { FakeEngine } from '../test/serve/fake-engine.ts';
import { createServer } from '../src/serve/server.ts';
import { LoraforgeError } from '../src/util/errors.ts';

type EngineFactory = () => Promise<ServeEngine>;

interface RunResult {
  maxBatch: number;
  requests: number;
  failedRequests: number;
  seconds: number;
  requestsPerSecond: number;
  tokensPerSecond: number;
  ttftMs: { p50: number; p99: number };
  interTokenMs: { p50: number; p99: number };
  memoryMiB: { rssBefore: number; rssAfter: number; heapBefore: number; heapAfter: number };
}

/** Latency samples kept per run; beyond this, reservoir sampling keeps the percentiles honest. */
const MAX_SAMPLES = 200_000;

class Samples {
  readonly values: number[] = [];
  private seen = 0;

  add(value: number): void {
    this.seen++;
    if (this.values.length < MAX_SAMPLES) this.values.push(value);
    else {
      const slot = Math.floor(Math.random() * this.seen);
      if (slot < MAX_SAMPLES) this.values[slot] = value;
    }
  }

  percentile(p: number): number {
    if (this.values.length === 0) return NaN;
    const sorted = [...this.values].sort((a, b) => a - b);
    return round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
const mib = (bytes: number) => round(bytes / 2 ** 20);

function parseOptions() {
  const { values } = parseArgs({
    options: {
      fake: { type: 'boolean', default: false },
      model: { type: 'string', default: 'assets/tiny-chat' },
      threads: { type: 'string', default: '2' },
      clients: { type: 'string', default: '16' },
      duration: { type: 'string', default: '30' },
      'max-tokens': { type: 'string', default: '64' },
      'max-batch': { type: 'string', default: '16' },
      'step-ms': { type: 'string', default: '10' },
      'per-seq-ms': { type: 'string', default: '0.5' },
      json: { type: 'boolean', default: false },
    },
  });
  const int = (name: string, max: number) => {
    const value = Number(values[name as keyof typeof values]);
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new LoraforgeError(`--${name} must be an integer from 1 to ${max}.`);
    }
    return value;
  };
  return {
    fake: values.fake,
    model: values.model,
    threads: int('threads', 64),
    clients: int('clients', 1024),
    durationS: int('duration', 3600),
    maxTokens: int('max-tokens', 4096),
    maxBatch: int('max-batch', 1024),
    stepMs: Number(values['step-ms']),
    perSequenceMs: Number(values['per-seq-ms']),
    json: values.json,
  };
}

type Options = ReturnType<typeof parseOptions>;

function engineFactory(options: Options): EngineFactory {
  if (!options.fake) {
    // The real model on the CPU backend (loaded afresh for each of the two runs).
    return async () => {
      await selectBackend({ device: 'cpu', threads: options.threads });
      return new ModelServeEngine(await ChatPipeline.load({ model: options.model }), 'tiny-chat');
    };
  }
  // The reply outlasts --max-tokens, so every request generates exactly that many tokens.
  const reply = 'x'.repeat(options.maxTokens + 1);
  return async () =>
    new FakeEngine({
      stepDelayMs: options.stepMs,
      perSequenceMs: options.perSequenceMs,
      reply: () => reply,
    });
}

interface Tally {
  requests: number;
  failedRequests: number;
  /** Content chunks received; the server sends one per decoded token that produced text. */
  tokens: number;
  ttft: Samples;
  interToken: Samples;
}

/** One streaming request; records TTFT and gaps between content chunks. */
async function streamOnce(
  url: string,
  model: string,
  maxTokens: number,
  tally: Tally,
  signal: AbortSignal,
) {
  const started = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model,
      messages: [{ role: 'user', content: 'Write something.' }],
      max_tokens: maxTokens,
      stream: true,
    }),
    signal,
  });
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    tally.failedRequests++;
    return;
  }
  let last: number | null = null;
  let buffered = '';
  const decoder = new TextDecoder();
  const reader = res.body.getReader();
  for (let read = await reader.read(); !read.done; read = await reader.read()) {
    buffered += decoder.decode(read.value, { stream: true });
    const events = buffered.split('\n\n');
    buffered = events.pop()!;
    for (const event of events) {
      const data = event.replace(/^data: /, '');
      if (data === '[DONE]') continue;
      if (!JSON.parse(data).choices?.[0]?.delta?.content) continue;
      const now = performance.now();
      if (last === null) tally.ttft.add(now - started);
      else tally.interToken.add(now - last);
      last = now;
      tally.tokens++;
    }
  }
  tally.requests++;
}

async function runOnce(
  factory: EngineFactory,
  options: Options,
  maxBatch: number,
): Promise<RunResult> {
  const engine = await factory();
  const server = createServer(engine, {
    maxBatch,
    maxQueue: options.clients,
    maxTokensDefault: options.maxTokens,
  });
  const { port } = await server.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${port}/v1/chat/completions`;
  // Warm-up outside the timed window: loads fetch's HTTP stack and opens every client's connection.
  const warmup: Tally = {
    requests: 0,
    failedRequests: 0,
    tokens: 0,
    ttft: new Samples(),
    interToken: new Samples(),
  };
  const forever = new AbortController().signal;
  await Promise.all(
    Array.from({ length: options.clients }, () =>
      streamOnce(url, engine.baseModelId, 1, warmup, forever),
    ),
  );
  globalThis.gc?.();
  const before = process.memoryUsage();
  const tally: Tally = {
    requests: 0,
    failedRequests: 0,
    tokens: 0,
    ttft: new Samples(),
    interToken: new Samples(),
  };
  // Requests still running at the deadline are cut off, so a run lasts --duration whatever the
  // queue holds; what they streamed so far still counts towards tokens/s.
  const deadline = AbortSignal.timeout(options.durationS * 1000);
  const started = performance.now();

  const client = async () => {
    while (!deadline.aborted) {
      await streamOnce(url, engine.baseModelId, options.maxTokens, tally, deadline).catch(() => {
        if (!deadline.aborted) tally.failedRequests++;
      });
    }
  };
  await Promise.all(Array.from({ length: options.clients }, client));
  const seconds = (performance.now() - started) / 1000;
  const after = process.memoryUsage();
  await server.close();

  return {
    maxBatch,
    requests: tally.requests,
    failedRequests: tally.failedRequests,
    seconds: round(seconds),
    requestsPerSecond: round(tally.requests / seconds),
    tokensPerSecond: round(tally.tokens / seconds),
    ttftMs: { p50: tally.ttft.percentile(50), p99: tally.ttft.percentile(99) },
    interTokenMs: { p50: tally.interToken.percentile(50), p99: tally.interToken.percentile(99) },
    memoryMiB: {
      rssBefore: mib(before.rss),
      rssAfter: mib(after.rss),
      heapBefore: mib(before.heapUsed),
      heapAfter: mib(after.heapUsed),
    },
  };
}

function describe(label: string, r: RunResult): string {
  return [
    `${label} (maxBatch=${r.maxBatch}): ${r.requests} requests (${r.failedRequests} failed) in ${r.seconds} s`,
    `  ${r.requestsPerSecond} req/s, ${r.tokensPerSecond} tokens/s`,
    `  TTFT p50 ${r.ttftMs.p50} ms, p99 ${r.ttftMs.p99} ms; inter-token p50 ${r.interTokenMs.p50} ms, p99 ${r.interTokenMs.p99} ms`,
    `  memory: rss ${r.memoryMiB.rssBefore} -> ${r.memoryMiB.rssAfter} MiB, heap ${r.memoryMiB.heapBefore} -> ${r.memoryMiB.heapAfter} MiB`,
  ].join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions();
  const factory = engineFactory(options);
  const batched = await runOnce(factory, options, options.maxBatch);
  const unbatched = await runOnce(factory, options, 1);
  const speedup = round(batched.tokensPerSecond / unbatched.tokensPerSecond);
  const engine = options.fake
    ? `fake (step ${options.stepMs} ms + ${options.perSequenceMs} ms/sequence)`
    : 'model';
  console.log(
    `serve bench: ${options.clients} clients x ${options.durationS} s, ${options.maxTokens} tokens each, engine ${engine}`,
  );
  console.log(describe('batched', batched));
  console.log(describe('unbatched', unbatched));
  console.log(`batched/unbatched tokens/s: ${speedup}x`);
  if (options.json) {
    const { stepMs, perSequenceMs, json: _json, ...run } = options;
    console.log(
      JSON.stringify({
        bench: 'serve',
        ...run,
        ...(options.fake ? { stepMs, perSequenceMs } : {}),
        batched,
        unbatched,
        speedup,
      }),
    );
  }
}

main().catch((err) => {
  if (err instanceof LoraforgeError) {
    console.error(`error: ${err.message}${err.hint ? `\n${err.hint}` : ''}`);
    process.exit(1);
  }
  throw err;
});
