/** LoRA parameter counts from a config alone, as PEFT reports them (no weights needed). */
import type { DecoderConfig } from '../models/config.ts';
import { projectionPath } from '../models/decoder.ts';
import { projectionShapes } from '../models/shapes.ts';
import { isTargeted, moduleLora, type LoraConfig } from './config.ts';

/** r·(in + out) (+ out DoRA magnitudes) for every targeted projection, rank_pattern applied. */
export function loraParameterCountOf(c: DecoderConfig, lora: LoraConfig): number {
  let n = 0;
  for (let layer = 0; layer < c.numLayers; layer++) {
    for (const [name, [out, inF]] of projectionShapes(c)) {
      const path = projectionPath(layer, name);
      if (!isTargeted(lora, path)) continue;
      n += moduleLora(lora, path).r * (out + inF) + (lora.useDora ? out : 0);
    }
  }
  return n;
}
