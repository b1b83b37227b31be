/**
 * Loads the tokenizer of a model folder (tokenizer.json + tokenizer_config.json, see
 * hf-tokenizer.ts), plus a streaming detokenizer for generation.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';
import { readGenerationConfig, readJsonObject } from './hf-folder.ts';
import { decodeUtf8, parseJsonChecked, readCheckedAsync, READ_LIMITS } from './safe-read.ts';
import { tokenizerFromFiles, type HfTokenizer } from './hf-tokenizer.ts';
export { createTextStreamer, type TextStreamer } from './text-streamer.ts';

export {
  HfTokenizer,
  tokenizerFromFiles,
  type SpecialTokens,
  type Tokenizer,
  type TokenizerFiles,
} from './hf-tokenizer.ts';

async function readText(path: string, maxBytes: number): Promise<string> {
  return decodeUtf8(await readCheckedAsync(path, { maxBytes }), path);
}

async function readTokenizerJson(path: string): Promise<object> {
  const value = parseJsonChecked(await readText(path, READ_LIMITS.tokenizer), path);
  if (typeof value !== 'object' || value === null)
    throw new LoraforgeError(`${path}: expected a JSON object`);
  return value;
}

export async function loadTokenizer(dir: string): Promise<HfTokenizer> {
  const tokenizerPath = join(dir, 'tokenizer.json');
  if (!existsSync(tokenizerPath)) {
    throw new LoraforgeError(
      `${dir}: no tokenizer.json`,
      'only fast tokenizers are supported; in Python, AutoTokenizer.from_pretrained(...).save_pretrained(dir) writes one',
    );
  }
  const configPath = join(dir, 'tokenizer_config.json');
  const templateFile = join(dir, 'chat_template.jinja');
  return tokenizerFromFiles(
    {
      tokenizerJson: await readTokenizerJson(tokenizerPath),
      tokenizerConfig: existsSync(configPath) ? readJsonObject(configPath) : {},
      chatTemplateFile: existsSync(templateFile)
        ? await readText(templateFile, READ_LIMITS.config)
        : undefined,
      generationConfig: readGenerationConfig(dir),
    },
    tokenizerPath,
  );
}
