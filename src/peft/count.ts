/** LoRA parameter counts from a config alone, as PEFT reports them (no weights needed). */
import type { DecoderConfig } from '../models/config.ts';
import { projectionPath } from '../models/decoder.ts';
import { projectionShapes } from '../models/shapes.ts';
import { isTargeted, type LoraConfig } from './config.ts';

/** r·(in + out) for every targeted projection. */
export function loraParameterCountOf(c: DecoderConfig, lora: LoraConfig): number {
  let n = 0;
  for (let layer = 0; layer < c.numLayers; layer++) {
    for (const [name, [out, inF]] of projectionShapes(c)) {
      if (isTargeted(lora, projectionPath(layer, name))) n += lora.r * (out + inF);
    }
  }
  return n;
}
