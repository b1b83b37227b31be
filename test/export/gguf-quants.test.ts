/**
 * The block layouts as llama.cpp decodes them: the tiny chat model exported as q8_0 and q4_k_m
 * (Q4_K, Q6_K, Q5_0 and Q8_0 tensors), decoded back by loraforge's own decoders into an f32 model,
 * gives llama.cpp's logits on the GGUF up to the rounding llama.cpp adds itself (it quantizes the
 * activations to 8 bits for quantized matrix products: measured 0.05 for q8_0 and 0.07 for q4_k_m
 * with logits of magnitude ~10). A wrong scale, nibble or bit position in any encoder would move
 * the logits by whole units.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ggufArchitecture, ggufModuleName } from '../../src/export/architectures.ts';
import { selectBackend } from '../../src/engine/select-backend.ts';
import { GgufReader } from '../../src/io/gguf/reader.ts';
import { SafetensorsFolder, writeSafetensors } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/models/load.ts';
import { loraforge, loraforgeLogits, maxLogitDiff, TINY_CHAT } from './fixtures.ts';
import { loadGguf } from './llama-cpp.ts';

let dir: string;
before(async () => {
  await selectBackend({ device: 'cpu' });
  dir = mkdtempSync(join(tmpdir(), 'lf-gguf-quants-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** An HF folder whose f32 weights are the GGUF's tensors as loraforge decodes them. */
function decodedModel(ggufPath: string, out: string): string {
  mkdirSync(out);
  const gguf = GgufReader.open(ggufPath);
  const source = SafetensorsFolder.open(TINY_CHAT);
  const tensors = source.names().map((name) => {
    const m = /^(.+)\.(weight|bias)$/.exec(name)!;
    const arch = ggufArchitecture({ architecture: 'Qwen2ForCausalLM' }, TINY_CHAT);
    const values = gguf.values(`${ggufModuleName(arch, 'model', m[1]!)}.${m[2]}`);
    return { name, dtype: 'F32' as const, shape: source.info(name).shape, data: values };
  });
  source.close();
  writeSafetensors(join(out, 'model.safetensors'), tensors);
  copyFileSync(join(TINY_CHAT, 'config.json'), join(out, 'config.json'));
  return out;
}

const TOKENS = [39, 1888, 25, 220, 848, 854, 324, 198, 198, 32, 266, 25, 220, 659, 220, 494];

for (const [type, bound] of [
  ['q8_0', 0.1],
  ['q4_k_m', 0.15],
] as const) {
  test(`${type}: llama.cpp's logits on the GGUF = loraforge's on its decoded weights (up to activation rounding)`, async () => {
    const path = join(dir, `tiny-${type}.gguf`);
    const r = loraforge(['export', '-m', TINY_CHAT, '--type', type, '-o', path]);
    assert.equal(r.status, 0, r.stderr);
    const model = loadModel(decodedModel(path, join(dir, `decoded-${type}`)), { dtype: 'f32' });
    const ours = loraforgeLogits(model, TOKENS);
    model.dispose();
    const gguf = await loadGguf(path);
    const theirs = await gguf.logits(TOKENS, 2048);
    await gguf.dispose();
    // Against the original bf16 weights, for scale: quantization itself moves the logits this much.
    const original = loadModel(TINY_CHAT, { dtype: 'f32' });
    const unquantized = loraforgeLogits(original, TOKENS);
    original.dispose();
    const diff = maxLogitDiff(theirs, ours);
    const quantization = maxLogitDiff(theirs, unquantized);
    console.log(
      `${type}: |llama.cpp − loraforge(decoded)| ≤ ${diff.toFixed(4)}; vs unquantized weights ${quantization.toFixed(4)}`,
    );
    assert.ok(diff < bound, `${diff}`);
  });
}
