/** LoRA parameter counts from a config alone, as PEFT reports them (no weights needed). */
import type { DecoderConfig } from '../models/config.ts';
import { PROJECTION_NAMES, projectionPath } from '../models/decoder.ts';
import { projectionShapes } from '../models/shapes.ts';
import { isTargeted, moduleLora, type LoraConfig } from './config.ts';

/** r·(in + out) (+ out DoRA magnitudes) for every targeted projection, rank_pattern applied. */
export function loraParameterCountOf(c: DecoderConfig, lora: LoraConfig): number {
  const shapes = projectionShapes(c);
  let n = 0;
  for (let layer = 0; layer < c.numLayers; layer++) {
    for (const name of PROJECTION_NAMES) {
      const path = projectionPath(layer, name);
      if (!isTargeted(lora, path)) continue;
      const [out, inF] = shapes[name];
      n += moduleLora(lora, path).r * (out + inF) + (lora.useDora ? out : 0);
    }
  }
  return n;
}
