/** Parameter counts from a config alone, as PEFT reports them (no weights needed). */
import type { DecoderConfig } from '../models/config.ts';
import { PROJECTION_NAMES, projectionPath } from '../models/decoder.ts';
import { hasBias, projectionShapes } from '../models/shapes.ts';
import { isTargeted, type LoraConfig } from './config.ts';

/** Every base weight (a tied head counted once). */
export function baseParameterCountOf(c: DecoderConfig): number {
  const shapes = projectionShapes(c);
  let perLayer = 2 * c.hiddenSize;
  for (const name of PROJECTION_NAMES) {
    const [out, inF] = shapes[name];
    perLayer += out * inF + (hasBias(c, name) ? out : 0);
  }
  const embed = c.vocabSize * c.hiddenSize;
  return embed * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * perLayer + c.hiddenSize;
}

/** r·(in + out) for every targeted projection. */
export function loraParameterCountOf(c: DecoderConfig, lora: LoraConfig): number {
  const shapes = projectionShapes(c);
  let n = 0;
  for (let layer = 0; layer < c.numLayers; layer++) {
    for (const name of PROJECTION_NAMES) {
      if (!isTargeted(lora, projectionPath(layer, name))) continue;
      const [out, inF] = shapes[name];
      n += lora.r * (out + inF);
    }
  }
  return n;
}
