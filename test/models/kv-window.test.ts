// The sliding-window KV cache (a ring of the window) against full forward passes, on the CPU;
// test/webgpu/kv-window.test.ts runs the same checks on WebGPU.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { KVCache } from '../../src/models/kv-cache.ts';
import { loadModel } from '../../src/models/load.ts';
import { FAMILY_GOLDENS, useCpuBackend } from '../helpers.ts';
import { checkChunks, checkPaddedBatch } from './kv-window-checks.ts';

// gemma3-tiny: layers sliding (window 4), sliding, full.
const GEMMA3 = FAMILY_GOLDENS.find((g) => g.name === 'gemma3-tiny')!.dir;
let model: DecoderModel;
before(async () => {
  await useCpuBackend();
  model = loadModel(GEMMA3);
});

test('the sliding layers keep their window, the full layer every position', () => {
  const cache = new KVCache(model.config, 1, 64);
  assert.deepEqual(
    [0, 1, 2].map((layer) => cache.positionsKept(layer)),
    [4, 4, 64],
  );
  cache.dispose();
});

test('chunks that wrap the ring, and one longer than the window, equal the full forward', () =>
  checkChunks(model));

test('left-padded rows in one cache equal the padded full forward, then decode', () =>
  checkPaddedBatch(model));
