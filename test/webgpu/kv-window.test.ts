// test/models/kv-window.test.ts on the WebGPU backend.
import { before, test } from 'node:test';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { FAMILY_GOLDENS } from '../helpers.ts';
import { checkChunks, checkPaddedBatch } from '../models/kv-window-checks.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const { skip } = await useWebGpuBackend();
let model: DecoderModel;
before(() => {
  if (!skip) model = loadModel(FAMILY_GOLDENS.find((g) => g.name === 'gemma3-tiny')!.dir);
});

test('sliding-window cache: chunks that wrap the ring equal the full forward', { skip }, () =>
  checkChunks(model),
);

test('sliding-window cache: left-padded rows, then decoding', { skip }, () =>
  checkPaddedBatch(model),
);
