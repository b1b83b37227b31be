/**
 * Loading and generation on a Qwen2-0.5B-shaped model (or --arch qwen3-0.6b / gemma3-1b; random
 * bf16 weights): load time and peak RSS, prefill tokens/s, KV-cache decode tokens/s at batch 1,
 * and as the same-run baseline, decoding by recomputing the whole sequence each token (no cache).
 * Decode is also given as GB/s of weights read (every weight matrix is read once per token; the
 * embedding table only when it is also the LM head) beside the machine's read bandwidth, measured
 * in the same run by the native `streamRead` probe (a STREAM-like parallel read of the LM head's
 * weights, which the model holds anyway), right before and right after the decode window: this
 * machine's read bandwidth changes by half within seconds, so a probe taken elsewhere in the run
 * can meet another bandwidth than the decode did.
 * The native and wasm CPU backends run side by side (`--backends`, default both when the native
 * build exists), each in a child process of its own (its own peak RSS); `--rounds N` alternates
 * them N times and reports the median and range of the native / wasm ratios, beside the decode
 * ratio that reading the weights at the read probe's speed would reach over wasm: the bound that
 * the machine's memory, not a kernel, puts on it.
 * With --quantization nf4 | fp4 | int8 (+ --double-quant), the same model loaded quantized decodes
 * the same tokens in the same run, beside bf16. Prefill and decode are timed after a warm-up
 * prefill and decode step; decode is also given at its median token (on a shared machine), and
 * with Qwen2-Instruct's sampling (temperature 0.7, top-k 20, top-p 0.8, repetition penalty 1.05)
 * beside greedy. --profile adds, on stderr and in the JSON, the time per kernel class of
 * 16 more decode steps and of one more prefill (bench/kernel-profile.ts); --bf16-gemm runs the
 * native GEMMs with bf16 products (bench/common.ts).
 *   npm run bench:generate [-- --arch A --threads T --prompt N --new M --backends native,wasm
 *                              --quantization Q --double-quant --profile --bf16-gemm --rounds R --json]
 */
import { noGrad } from '../src/engine/tape.ts';
import type { CpuStorage } from '../src/engine/cpu/backend.ts';
import { setBackend, tidy, type Tensor } from '../src/engine/tensor.ts';
import { SequenceDecoder } from '../src/infer/sequences.ts';
import { readModelConfig } from '../src/io/hf-folder.ts';
import { SafetensorsFolder } from '../src/io/safetensors.ts';
import { parseDecoderConfig } from '../src/models/config.ts';
import { loadModel } from '../src/models/load.ts';
import { NativeBackend } from '../src/engine/native/backend.ts';
import { formatProfile, profileKernels } from './kernel-profile.ts';
import {
  argValue,
  benchArch,
  cpuBackendNames,
  createCpuBackend,
  emitJson,
  peakRss,
  printMachine,
  randomBenchModel,
  runPerBackend,
  say,
} from './common.ts';

const threads = argValue('--threads', 2);
/** Qwen2-Instruct's generation_config.json. */
const QWEN2_INSTRUCT_SAMPLING = {
  temperature: 0.7,
  topK: 20,
  topP: 0.8,
  repetitionPenalty: 1.05,
  seed: 1,
};
const promptLength = argValue('--prompt', 128);
const newTokens = argValue('--new', 32);
const profile = process.argv.includes('--profile');

printMachine();
const dir = randomBenchModel();
const backends = cpuBackendNames();
if (backends.length > 1) {
  compareBackends();
  process.exit(0);
}
const backendName = backends[0]!;
const backend = await createCpuBackend(backendName, threads);
setBackend(backend);
say(`backend: ${backend.describe()}`);
const loadStart = performance.now();
const model = loadModel(dir, { dtype: 'bf16' });
const loadSeconds = (performance.now() - loadStart) / 1000;
const loadPeakRss = peakRss();
say(`load (bf16): ${loadSeconds.toFixed(2)} s, peak RSS ${(loadPeakRss / 2 ** 30).toFixed(2)} GiB`);

const prompt = Array.from({ length: promptLength }, (_, i) => 1 + ((i * 7919) % 150000));
const profileSteps = profile ? 16 : 0;
const decoder = new SequenceDecoder(model, {
  maxContext: promptLength + newTokens + profileSteps + 1,
});
// Warm-up: a first prefill and decode step allocate the backend's working memory (fresh pages
// fault in: a native block's first touch, a wasm memory grow) and compile the kernels' hot paths;
// the timed runs reuse all of it, as every request after a server's first does.
const warmUp = decoder.start(prompt);
for (let i = 0; i < 2; i++) await decoder.step([warmUp]);
decoder.release(warmUp);
const seq = decoder.start(prompt);
let start = performance.now();
await decoder.step([seq]); // prefill + first token
const prefillSeconds = (performance.now() - start) / 1000;
const probeBefore = readBandwidth(model.lmHead);
start = performance.now();
const tokenSeconds: number[] = [];
for (let i = 1; i < newTokens; i++) {
  const tokenStart = performance.now();
  await decoder.step([seq]);
  tokenSeconds.push((performance.now() - tokenStart) / 1000);
}
const decodeSeconds = (performance.now() - start) / 1000;
const probeAfter = readBandwidth(model.lmHead);
const readProbe = probeBefore && probeAfter ? (probeBefore + probeAfter) / 2 : null;
// On a shared machine other processes stretch some tokens: the median token says what the
// backend does when it gets the cores (the read probe is a best-of-4 figure too).
const medianTokenSeconds = tokenSeconds.sort((a, b) => a - b)[tokenSeconds.length >> 1]!;
// The same decode with Qwen2-Instruct's generation_config.json sampling, what chat and serve use by
// default: the sampler's cost per token (top-k and top-p over the whole vocabulary) shows beside
// greedy decoding's argmax.
const sampled = decoder.start(prompt, QWEN2_INSTRUCT_SAMPLING);
await decoder.step([sampled]);
const sampledStart = performance.now();
for (let i = 1; i < newTokens; i++) await decoder.step([sampled]);
const sampledSeconds = (performance.now() - sampledStart) / 1000;
decoder.release(sampled);
const decodeProfile = profile
  ? await profileKernels(backend, profileSteps, () => decoder.step([seq]))
  : null;
decoder.release(seq);
const prefillProfile = profile
  ? await profileKernels(backend, 1, async () => {
      const again = decoder.start(prompt);
      await decoder.step([again]);
      decoder.release(again);
    })
  : null;
for (const [label, p] of [
  ['decode step', decodeProfile],
  [`prefill of ${promptLength} tokens`, prefillProfile],
] as const) {
  if (p) console.error(formatProfile(`${backend.describe()}, ${label}`, p).join('\n'));
}

// Baseline: the same tokens without a KV cache, recomputing the whole prefix per token (few tokens).
const baselineTokens = 3;
start = performance.now();
noGrad(() => {
  const tokens = [...prompt];
  for (let i = 0; i < baselineTokens; i++) {
    tidy(() => {
      const h = model.forwardHidden({
        batch: 1,
        seq: tokens.length,
        inputIds: Int32Array.from(tokens),
      });
      model.logits(h, [tokens.length - 1]);
    });
    tokens.push(1);
  }
});
const noCacheSecondsPerToken = (performance.now() - start) / 1000 / baselineTokens;

const weightBytes = weightBytesPerToken(dir);
const generatePeakRss = peakRss();
const quantizationIndex = process.argv.indexOf('--quantization');
const quantization = quantizationIndex >= 0 ? process.argv[quantizationIndex + 1] : null;
let quantized: { type: string; loadSeconds: number; decodeTokensPerSecond: number } | null = null;
if (quantization) {
  const type = quantization as 'nf4' | 'fp4' | 'int8';
  model.dispose();
  let begin = performance.now();
  const q = loadModel(dir, {
    dtype: 'bf16',
    quantization: { type, doubleQuant: process.argv.includes('--double-quant') },
  });
  const seconds = (performance.now() - begin) / 1000;
  const qDecoder = new SequenceDecoder(q, { maxContext: promptLength + newTokens + 1 });
  const qSeq = qDecoder.start(prompt);
  await qDecoder.step([qSeq]);
  begin = performance.now();
  for (let i = 1; i < newTokens; i++) await qDecoder.step([qSeq]);
  quantized = {
    type,
    loadSeconds: seconds,
    decodeTokensPerSecond: (newTokens - 1) / ((performance.now() - begin) / 1000),
  };
  qDecoder.release(qSeq);
}

const result = {
  quantized,
  arch: benchArch(),
  backend: backendName,
  describe: backend.describe(),
  threads,
  loadSeconds,
  loadPeakRssBytes: loadPeakRss,
  promptTokens: promptLength,
  prefillTokensPerSecond: promptLength / prefillSeconds,
  decodeTokensPerSecond: (newTokens - 1) / decodeSeconds,
  sampledDecodeTokensPerSecond: (newTokens - 1) / sampledSeconds,
  noCacheTokensPerSecond: 1 / noCacheSecondsPerToken,
  kvCacheSpeedup: noCacheSecondsPerToken / (decodeSeconds / (newTokens - 1)),
  weightBytesPerToken: weightBytes,
  decodeWeightGBps: (weightBytes * (newTokens - 1)) / decodeSeconds / 1e9,
  decodeMedianTokenTokensPerSecond: 1 / medianTokenSeconds,
  decodeMedianTokenWeightGBps: weightBytes / medianTokenSeconds / 1e9,
  readProbeGBps: readProbe,
  readProbeBeforeAfterGBps: readProbe ? [probeBefore, probeAfter] : null,
  peakRssBytes: generatePeakRss,
  decodeProfile,
  prefillProfile,
};
say(`prefill: ${result.prefillTokensPerSecond.toFixed(1)} tokens/s (${promptLength} tokens)`);
say(
  `decode (KV cache): ${result.decodeTokensPerSecond.toFixed(2)} tokens/s (median token: ${result.decodeMedianTokenTokensPerSecond.toFixed(2)})`,
);
say(
  `decode with sampling (${describeSampling(QWEN2_INSTRUCT_SAMPLING)}): ${result.sampledDecodeTokensPerSecond.toFixed(2)} tokens/s (greedy ${result.decodeTokensPerSecond.toFixed(2)}, same run)`,
);
say(
  `decode without cache (baseline, same run): ${result.noCacheTokensPerSecond.toFixed(2)} tokens/s -> KV cache ${result.kvCacheSpeedup.toFixed(1)}x`,
);
say(
  `weights read while decoding: ${result.decodeWeightGBps.toFixed(1)} GB/s` +
    (readProbe
      ? ` (read probe around the decode window: ${probeBefore!.toFixed(1)} before, ${probeAfter!.toFixed(1)} after)`
      : ''),
);
if (quantized) {
  say(
    `decode (KV cache) ${quantized.type}: ${quantized.decodeTokensPerSecond.toFixed(2)} tokens/s (bf16 ${result.decodeTokensPerSecond.toFixed(2)}, same run); quantized load ${quantized.loadSeconds.toFixed(2)} s`,
  );
}
emitJson(result);
process.exit(0);

function describeSampling(options: Record<string, number>): string {
  return Object.entries(options)
    .filter(([name]) => name !== 'seed')
    .map(([name, value]) => `${name} ${value}`)
    .join(', ');
}

/** Bytes of weights one decoded token reads: every matrix, the embedding table if tied. */
function weightBytesPerToken(folder: string): number {
  const config = parseDecoderConfig(readModelConfig(folder), folder);
  const weights = SafetensorsFolder.open(folder);
  let bytes = 0;
  for (const name of weights.names()) {
    const embedding = name.endsWith('embed_tokens.weight');
    if (!embedding || config.tieWordEmbeddings) bytes += weights.info(name).byteLength;
  }
  return bytes;
}

/**
 * GB/s of the native `streamRead` probe over `weights` (best of 4 reads after a warm-up read), or
 * null on the wasm backend.
 */
function readBandwidth(weights: Tensor): number | null {
  if (!(backend instanceof NativeBackend)) return null;
  const read = backend.runtime.exports.streamRead;
  if (!read) return null;
  const address = (weights.storage as CpuStorage).ptr + weights.byteOffset;
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    read(address, weights.bytes);
    if (i > 0) best = Math.min(best, (performance.now() - start) / 1000);
  }
  return weights.bytes / best / 1e9;
}

interface RoundFigures {
  backends: Record<string, Record<string, unknown>>;
  readProbeGBps: number | null;
  nativeOverWasm: {
    decode: number;
    decodeMedianToken: number;
    prefill: number;
    /**
     * What a decoder reading the weights at the read probe's speed, and doing nothing else, would
     * be over wasm: on a machine where wasm already streams weights near the bandwidth ceiling, no
     * native kernel can pass this.
     */
    decodeAtReadProbe: number | null;
  } | null;
}

/** One round: both backends, one child process each; prints its figures. */
function compareOnce(): RoundFigures {
  const runs = runPerBackend(backends);
  const probe = Number(runs.native?.readProbeGBps) || null;
  for (const [name, r] of Object.entries(runs)) {
    // Only the native child reads the probe; the other decoded at another moment.
    const own = Number(r.readProbeGBps) || null;
    const gbps = Number(r.decodeWeightGBps);
    const share = own ? ` = ${((100 * gbps) / own).toFixed(0)}% of the read probe` : '';
    const medianGbps = Number(r.decodeMedianTokenWeightGBps);
    const medianShare = own ? ` = ${((100 * medianGbps) / own).toFixed(0)}%` : '';
    say(
      `${name} (${String(r.describe)}): load ${Number(r.loadSeconds).toFixed(2)} s, prefill ${Number(r.prefillTokensPerSecond).toFixed(1)} tokens/s, ` +
        `decode ${Number(r.decodeTokensPerSecond).toFixed(2)} tokens/s (${gbps.toFixed(1)} GB/s of weights${share}; median token ${Number(r.decodeMedianTokenTokensPerSecond).toFixed(2)} tokens/s = ${medianGbps.toFixed(1)} GB/s${medianShare}), sampled ${Number(r.sampledDecodeTokensPerSecond).toFixed(2)} tokens/s, peak RSS ${(Number(r.peakRssBytes) / 2 ** 30).toFixed(2)} GiB`,
    );
  }
  for (const [name, r] of Object.entries(runs)) {
    const q = r.quantized as typeof quantized;
    if (q)
      say(
        `${name} ${q.type}: decode ${q.decodeTokensPerSecond.toFixed(2)} tokens/s (bf16 ${Number(r.decodeTokensPerSecond).toFixed(2)}, same process: ${(q.decodeTokensPerSecond / Number(r.decodeTokensPerSecond)).toFixed(2)}x); quantized load ${q.loadSeconds.toFixed(2)} s`,
      );
  }
  if (probe) {
    const [before, after] = runs.native!.readProbeBeforeAfterGBps as [number, number];
    say(
      `read probe (native streamRead over the LM head, right before and after native's decode window): ${before.toFixed(1)} and ${after.toFixed(1)} GB/s`,
    );
  }
  const { native, wasm } = runs;
  const ratio = (key: string) => Number(native![key]) / Number(wasm![key]);
  const nativeOverWasm =
    native && wasm
      ? {
          decode: ratio('decodeTokensPerSecond'),
          decodeMedianToken: ratio('decodeMedianTokenTokensPerSecond'),
          prefill: ratio('prefillTokensPerSecond'),
          decodeAtReadProbe: probe
            ? (probe * 1e9) /
              Number(native.weightBytesPerToken) /
              Number(wasm.decodeTokensPerSecond)
            : null,
        }
      : null;
  if (nativeOverWasm) {
    const bound = nativeOverWasm.decodeAtReadProbe;
    say(
      `native / wasm (same run): decode ${nativeOverWasm.decode.toFixed(2)}x (median token ${nativeOverWasm.decodeMedianToken.toFixed(2)}x), prefill ${nativeOverWasm.prefill.toFixed(2)}x` +
        (bound ? `; weights read at the probe's speed would decode ${bound.toFixed(2)}x wasm` : ''),
    );
  }
  return { backends: runs, readProbeGBps: probe, nativeOverWasm };
}

/**
 * `--rounds N` rounds of both backends, alternating, so that a change in the machine's load
 * between one backend's child and the other's shows as spread rather than as a ratio; with
 * several rounds, the median and range of each ratio follow. Emits every round's figures.
 */
function compareBackends(): void {
  const rounds = argValue('--rounds', 1);
  const figures: RoundFigures[] = [];
  for (let i = 0; i < rounds; i++) {
    if (rounds > 1) say(`-- round ${i + 1} of ${rounds}`);
    figures.push(compareOnce());
  }
  const ratios = figures.flatMap((f) => (f.nativeOverWasm ? [f.nativeOverWasm] : []));
  const spread = (key: 'decode' | 'decodeMedianToken' | 'prefill' | 'decodeAtReadProbe') => {
    const sorted = ratios.map((r) => r[key] ?? NaN).sort((a, b) => a - b);
    const middle = sorted.length / 2;
    const median =
      sorted.length % 2 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
    return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
  };
  const summary =
    ratios.length > 1
      ? {
          decode: spread('decode'),
          decodeMedianToken: spread('decodeMedianToken'),
          prefill: spread('prefill'),
          decodeAtReadProbe: spread('decodeAtReadProbe'),
        }
      : null;
  if (summary) {
    const show = (r: { median: number; min: number; max: number }) =>
      `${r.median.toFixed(2)}x (${r.min.toFixed(2)}-${r.max.toFixed(2)})`;
    say(
      `native / wasm over ${ratios.length} rounds, median (range): decode ${show(summary.decode)}, median token ${show(summary.decodeMedianToken)}, prefill ${show(summary.prefill)}; ` +
        `decode at the read probe's speed ${show(summary.decodeAtReadProbe)}`,
    );
  }
  const last = figures[figures.length - 1]!;
  emitJson({
    threads,
    ...last,
    ...(rounds > 1 && { rounds: figures, nativeOverWasmAcrossRounds: summary }),
  });
}
