/**
 * Older spellings of weight names → the module names transformers uses today (its
 * `_checkpoint_conversion_mapping`). Multimodal checkpoints saved before transformers 4.52 — most
 * published Gemma 3 4B+ and Mistral 3 folders — keep the language model under
 * `language_model.model.*`; transformers (and PEFT keys) now call it `model.language_model.*`.
 */
import type { TensorSource } from '../io/safetensors-format.ts';

const LEGACY_PREFIXES: [legacy: string, current: string][] = [
  ['language_model.model.', 'model.language_model.'],
  ['language_model.lm_head.', 'lm_head.'],
];

/** The current name of a weight (unchanged when it is not in a legacy spelling). */
export function currentWeightName(name: string): string {
  for (const [legacy, current] of LEGACY_PREFIXES) {
    if (name.startsWith(legacy)) return current + name.slice(legacy.length);
  }
  return name;
}

/**
 * `source` seen under current names: the loader asks for `model.language_model.…` whichever
 * spelling the file uses. Returns `source` itself when no name needs renaming.
 */
export function withCurrentNames(source: TensorSource): TensorSource {
  const fileName = new Map(source.names().map((name) => [currentWeightName(name), name]));
  if ([...fileName].every(([current, name]) => current === name)) return source;
  const inFile = (name: string) => fileName.get(name) ?? name;
  return {
    names: () => [...fileName.keys()],
    has: (name) => fileName.has(name),
    info: (name) => source.info(inFile(name)),
    read: (name) => source.read(inFile(name)),
    readInto: (name, target) => source.readInto(inFile(name), target),
    close: () => source.close(),
  };
}
