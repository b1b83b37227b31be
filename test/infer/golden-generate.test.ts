import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadModel } from '../../src/models/load.ts';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { SequenceDecoder } from '../../src/infer/sequences.ts';
import { TINY, maxAbsDiff, readGolden } from '../helpers.ts';
import { forEachCpuBackend } from '../cpu-backends.ts';

forEachCpuBackend(() => {
  interface GoldenPrompt {
    prompt_ids: number[];
    output_ids_use_cache_true: number[];
  }

  let model: DecoderModel;
  before(async () => {
    model = loadModel(TINY);
  });

  const golden = JSON.parse(readFileSync(join(TINY, 'generate.json'), 'utf8')) as {
    prompts: GoldenPrompt[];
  };
  const stepLogits = readGolden(join(TINY, 'generate_logits.safetensors'));

  async function greedy(
    decoder: SequenceDecoder,
    prompts: GoldenPrompt[],
  ): Promise<{ ids: number[][]; logits: Float32Array[][] }> {
    const seqs = prompts.map((p) => decoder.start(p.prompt_ids));
    const logits: Float32Array[][] = prompts.map(() => []);
    // 12 new tokens each; a sequence prefilling in chunks gets its first one a few steps later.
    let active = seqs;
    while (active.length > 0) {
      await decoder.step(active, { onLogits: (seq, l) => logits[seqs.indexOf(seq)]!.push(l) });
      active = active.filter((s) => s.tokens.length < s.promptLength + 12);
    }
    for (const s of seqs) decoder.release(s);
    return { ids: seqs.map((s) => s.tokens), logits };
  }

  function check(result: { ids: number[][]; logits: Float32Array[][] }, indices: number[]): void {
    indices.forEach((g, i) => {
      assert.deepEqual(result.ids[i], golden.prompts[g]!.output_ids_use_cache_true);
      const expected = stepLogits.f32(`prompt${g}.step_logits`).data;
      const mine = new Float32Array(expected.length);
      result.logits[i]!.forEach((l, step) => mine.set(l, step * l.length));
      const diff = maxAbsDiff(mine, expected);
      assert.ok(diff < 1e-4, `prompt ${g}: step logits differ by ${diff}`);
    });
  }

  test('greedy KV-cache generation matches transformers, one prompt at a time', async () => {
    const decoder = new SequenceDecoder(model);
    check(await greedy(decoder, [golden.prompts[0]!]), [0]);
    check(await greedy(decoder, [golden.prompts[1]!]), [1]);
  });

  test('batched decoding of prompts of different lengths gives the same ids and logits', async () => {
    check(await greedy(new SequenceDecoder(model), golden.prompts), [0, 1]);
  });

  test('chunked prefill (3 prompt tokens a step) gives the same ids and logits', async () => {
    const decoder = new SequenceDecoder(model, { prefillChunk: 3 });
    assert.ok(
      golden.prompts.every((p) => p.prompt_ids.length > 3),
      'prompts span several chunks',
    );
    check(await greedy(decoder, golden.prompts), [0, 1]);
    // One sequence alone: its first steps return no token.
    const seq = decoder.start(golden.prompts[0]!.prompt_ids);
    assert.deepEqual(await decoder.step([seq]), [null]);
    decoder.release(seq);
  });
});
