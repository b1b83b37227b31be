import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDecoderConfig } from '../../src/models/config.ts';
import { QWEN2_0_5B_CONFIG } from '../../src/models/random.ts';
import { makeLoraConfig } from '../../src/peft/config.ts';
import { baseParameterCountOf } from '../../src/models/shapes.ts';
import { loraParameterCountOf } from '../../src/peft/count.ts';

test("Qwen2-0.5B parameter counts are PEFT's", () => {
  const config = parseDecoderConfig(QWEN2_0_5B_CONFIG);
  assert.equal(baseParameterCountOf(config), 494_032_768);
  const allLinear = loraParameterCountOf(
    config,
    makeLoraConfig({ r: 8, targetModules: 'all-linear' }),
  );
  assert.equal(allLinear, 4_399_104);
  assert.equal(baseParameterCountOf(config) + allLinear, 498_431_872);
  // PEFT's default targets for qwen2.
  assert.equal(
    loraParameterCountOf(config, makeLoraConfig({ r: 8, targetModules: ['q_proj', 'v_proj'] })),
    540_672,
  );
});
