/**
 * Loading and generation on a Qwen2-0.5B-shaped model (or --arch qwen3-0.6b / gemma3-1b; random
 * bf16 weights): load time and peak RSS, prefill tokens/s, KV-cache decode tokens/s, and as the
 * same-run baseline, decoding by recomputing the whole sequence each token (no cache).
 * With --quantization nf4 | fp4 | int8 (+ --double-quant), the same model loaded quantized decodes
 * the same tokens in the same run, beside bf16.
 *   npm run bench:generate [-- --arch A --threads T --prompt N --new M --quantization Q --json]
 */
import '../src/engine/cpu/node-host.ts';
import { CpuBackend } from '../src/engine/cpu/backend.ts';
import { noGrad } from '../src/engine/tape.ts';
import { setBackend, tidy } from '../src/engine/tensor.ts';
import { SequenceDecoder } from '../src/infer/sequences.ts';
import { loadModel } from '../src/models/load.ts';
import {
  argValue,
  benchArch,
  emitJson,
  peakRss,
  printMachine,
  randomBenchModel,
  say,
} from './common.ts';

const threads = argValue('--threads', 2);
const promptLength = argValue('--prompt', 128);
const newTokens = argValue('--new', 32);

printMachine();
const dir = randomBenchModel();
setBackend(await CpuBackend.create({ threads }));
const loadStart = performance.now();
const model = loadModel(dir, { dtype: 'bf16' });
const loadSeconds = (performance.now() - loadStart) / 1000;
const loadPeakRss = peakRss();
say(`load (bf16): ${loadSeconds.toFixed(2)} s, peak RSS ${(loadPeakRss / 2 ** 30).toFixed(2)} GiB`);

const prompt = Array.from({ length: promptLength }, (_, i) => 1 + ((i * 7919) % 150000));
const decoder = new SequenceDecoder(model, { maxContext: promptLength + newTokens + 1 });
const seq = decoder.start(prompt);
let start = performance.now();
await decoder.step([seq]); // prefill + first token
const prefillSeconds = (performance.now() - start) / 1000;
start = performance.now();
for (let i = 1; i < newTokens; i++) await decoder.step([seq]);
const decodeSeconds = (performance.now() - start) / 1000;
decoder.release(seq);

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
  threads,
  loadSeconds,
  loadPeakRssBytes: loadPeakRss,
  promptTokens: promptLength,
  prefillTokensPerSecond: promptLength / prefillSeconds,
  decodeTokensPerSecond: (newTokens - 1) / decodeSeconds,
  noCacheTokensPerSecond: 1 / noCacheSecondsPerToken,
  kvCacheSpeedup: noCacheSecondsPerToken / (decodeSeconds / (newTokens - 1)),
};
say(`prefill: ${result.prefillTokensPerSecond.toFixed(1)} tokens/s (${promptLength} tokens)`);
say(`decode (KV cache): ${result.decodeTokensPerSecond.toFixed(2)} tokens/s`);
say(
  `decode without cache (baseline, same run): ${result.noCacheTokensPerSecond.toFixed(2)} tokens/s -> KV cache ${result.kvCacheSpeedup.toFixed(1)}x`,
);
if (quantized) {
  say(
    `decode (KV cache) ${quantized.type}: ${quantized.decodeTokensPerSecond.toFixed(2)} tokens/s (bf16 ${result.decodeTokensPerSecond.toFixed(2)}, same run); quantized load ${quantized.loadSeconds.toFixed(2)} s`,
  );
}
emitJson(result);
process.exit(0);
