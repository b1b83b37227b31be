// test/models/golden-families.test.ts on the WebGPU backend (the merge reads tensors
// synchronously and is checked on the CPU only).
import { before, describe, test } from 'node:test';
import type { DecoderModel } from '../../src/models/decoder.ts';
import { loadModel } from '../../src/models/load.ts';
import { FAMILY_GOLDENS } from '../helpers.ts';
import { assertGoldenPackage } from '../models/golden-package.ts';
import { useWebGpuBackend } from './use-webgpu-backend.ts';

const { skip } = await useWebGpuBackend();

for (const { name, dir } of FAMILY_GOLDENS) {
  describe(name, () => {
    let model: DecoderModel;
    before(() => {
      if (!skip) model = loadModel(dir);
    });
    for (const check of ['forward', 'generate', 'lora', 'train'] as const) {
      test(`${check} on WebGPU matches transformers`, { skip }, () =>
        assertGoldenPackage(model, dir, check),
      );
    }
  });
}
