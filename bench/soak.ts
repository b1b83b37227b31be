/**
 * Soak test of `loraforge serve` (opt-in, loopback only, bounded in clients and time): the real
 * CLI serves the shipped tiny chat model in a child process while, for --minutes,
 *   - 32 clients stream chat completions back to back,
 *   - 8 clients send 1 MB prompts (the server must refuse them with 413 without stalling),
 *   - a prober calls /health every 100 ms.
 * Reported: /health latency (p50, p99, max), the server's RSS after a warm-up (a fifth of the
 * run, at most a minute, under full load) and at the end
 * (growth in %), completed streams and tokens, and every response that was not the intended
 * one (a stream that is not 200, a big prompt answered other than 400/413, a network error).
 *
 *   npm run bench:soak [-- --minutes 5] [--stream-clients 32] [--big-clients 8] [--max-tokens 32] [--threads 2] [--json]
 *
 * The last line is one JSON object (with --json, the only output).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine, say } from './common.ts';

const ROOT = join(import.meta.dirname, '..');
const MODEL_ID = 'soak';

function parseOptions() {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '5' },
      'stream-clients': { type: 'string', default: '32' },
      'big-clients': { type: 'string', default: '8' },
      'max-tokens': { type: 'string', default: '32' },
      threads: { type: 'string', default: '2' },
      model: { type: 'string', default: join(ROOT, 'assets', 'tiny-chat') },
      json: { type: 'boolean', default: false },
    },
  });
  const bounded = (name: keyof typeof values, min: number, max: number): number => {
    const value = Number(values[name]);
    if (!(value >= min && value <= max)) {
      console.error(`error: --${name} must be a number from ${min} to ${max}`);
      process.exit(1);
    }
    return value;
  };
  return {
    minutes: bounded('minutes', 0.05, 60),
    streamClients: bounded('stream-clients', 1, 256),
    bigClients: bounded('big-clients', 0, 64),
    maxTokens: bounded('max-tokens', 1, 1024),
    threads: bounded('threads', 1, 64),
    model: values.model!,
  };
}

type Options = ReturnType<typeof parseOptions>;

/** Starts `loraforge serve` on a free loopback port; resolves to its base URL. */
function startServer(options: Options): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin', 'loraforge.js'),
      'serve',
      '--model',
      options.model,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--device',
      'cpu',
      '--threads',
      String(options.threads),
      '--served-model-name',
      MODEL_ID,
      '--max-queue',
      String(options.streamClients + options.bigClients),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /serving: +(http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
      if (match) resolve({ child, base: match[1]! });
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}:\n${stderr}`)));
  });
}

/** Resident set size of a process, from /proc (Linux). */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number) => Math.round(x * 10) / 10;

interface Counts {
  streams: number;
  tokens: number;
  refusedBig: number;
  /** status (or 'network') -> count, for responses that were not the intended ones. */
  unexpected: Record<string, number>;
}

async function streamChat(base: string, maxTokens: number, counts: Counts, signal: AbortSignal) {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: MODEL_ID,
      messages: [{ role: 'user', content: 'Tell me about yourself.' }],
      max_tokens: maxTokens,
      stream: true,
    }),
    signal,
  });
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    counts.unexpected[res.status] = (counts.unexpected[res.status] ?? 0) + 1;
    return;
  }
  const text = await res.text();
  counts.tokens += text.split('\n\n').filter((e) => e.includes('"content"')).length;
  counts.streams++;
}

async function sendBigPrompt(base: string, body: string, counts: Counts, signal: AbortSignal) {
  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    signal,
  });
  await res.arrayBuffer();
  if (res.status === 413 || res.status === 400) counts.refusedBig++;
  else counts.unexpected[res.status] = (counts.unexpected[res.status] ?? 0) + 1;
}

/** Runs `once` back to back until the deadline; a failure that is not the deadline is counted. */
async function loop(once: () => Promise<void>, deadline: AbortSignal, counts: Counts) {
  while (!deadline.aborted) {
    await once().catch(() => {
      if (!deadline.aborted) counts.unexpected.network = (counts.unexpected.network ?? 0) + 1;
    });
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  const { child, base } = await startServer(options);
  try {
    const counts: Counts = { streams: 0, tokens: 0, refusedBig: 0, unexpected: {} };
    say(
      `soak: ${options.streamClients} streaming + ${options.bigClients} 1 MB-prompt clients for ${options.minutes} min against ${base}`,
    );

    const loadStart = loadavg()[0]!;
    const deadline = AbortSignal.timeout(options.minutes * 60_000);
    // Serialized once: the clients share this machine's CPU with the server.
    const bigBody = JSON.stringify({
      model: MODEL_ID,
      prompt: 'lorem ipsum dolor sit amet '.repeat(Math.ceil(1_000_000 / 27)).slice(0, 1_000_000),
      max_tokens: 1,
    });
    const health: number[] = [];
    // The RSS baseline is taken under full load once a warm-up share of the run has passed
    // (caches, pools and JIT filled), so growth means memory that keeps growing.
    const warmUpMs = Math.min(60_000, options.minutes * 60_000 * 0.2);
    const runStart = performance.now();
    let rssStart = NaN;
    let rssPeak = 0;
    const prober = (async () => {
      while (!deadline.aborted) {
        if (Number.isNaN(rssStart) && performance.now() - runStart >= warmUpMs)
          rssStart = rssMiB(child.pid!);
        const started = performance.now();
        const res = await fetch(`${base}/health`).catch(() => null);
        await res?.arrayBuffer();
        if (res?.status === 200) health.push(performance.now() - started);
        else counts.unexpected.health = (counts.unexpected.health ?? 0) + 1;
        rssPeak = Math.max(rssPeak, rssMiB(child.pid!));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await Promise.all([
      prober,
      ...Array.from({ length: options.streamClients }, () =>
        loop(() => streamChat(base, options.maxTokens, counts, deadline), deadline, counts),
      ),
      ...Array.from({ length: options.bigClients }, () =>
        loop(() => sendBigPrompt(base, bigBody, counts, deadline), deadline, counts),
      ),
    ]);
    const rssEnd = rssMiB(child.pid!);
    const result = {
      bench: 'soak',
      machine: machine(),
      // Other work on the machine inflates latencies: the 1-minute load average, start and end.
      loadAverage: [round(loadStart), round(loadavg()[0]!)],
      ...options,
      healthMs: {
        samples: health.length,
        p50: round(percentile(health, 50)),
        p99: round(percentile(health, 99)),
        max: round(Math.max(...health)),
      },
      rssMiB: { start: round(rssStart), end: round(rssEnd), peak: round(rssPeak) },
      rssGrowthPercent: round(((rssEnd - rssStart) / rssStart) * 100),
      streams: counts.streams,
      tokens: counts.tokens,
      refusedBigPrompts: counts.refusedBig,
      unexpected: counts.unexpected,
      unexpectedTotal: Object.values(counts.unexpected).reduce((a, b) => a + b, 0),
    };
    say(
      `/health: p50 ${result.healthMs.p50} ms, p99 ${result.healthMs.p99} ms, max ${result.healthMs.max} ms (${health.length} probes)`,
    );
    say(
      `server RSS: ${result.rssMiB.start} -> ${result.rssMiB.end} MiB (${result.rssGrowthPercent} %), peak ${result.rssMiB.peak} MiB`,
    );
    say(
      `${counts.streams} streams (${counts.tokens} chunks), ${counts.refusedBig} big prompts refused, ${result.unexpectedTotal} unexpected: ${JSON.stringify(counts.unexpected)}`,
    );
    console.log(JSON.stringify(result));
  } finally {
    child.kill('SIGTERM');
  }
}

await main();
