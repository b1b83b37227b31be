/**
 * Loads the tokenizer of a model folder (tokenizer.json + tokenizer_config.json, see
 * hf-tokenizer.ts), plus a streaming detokenizer for generation.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';
import { readGenerationConfig, readJsonObject } from './hf-folder.ts';
import { decodeUtf8, parseJsonChecked, readCheckedAsync, READ_LIMITS } from './safe-read.ts';
import { tokenizerFromFiles, type HfTokenizer, type Tokenizer } from './hf-tokenizer.ts';

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

export interface TextStreamer {
  /** Adds one generated id; returns the text it completes (often '', e.g. mid UTF-8 character). */
  push(id: number): string;
  /** Returns whatever is still held back (an incomplete character decodes to U+FFFD here). */
  flush(): string;
}

/**
 * Incremental detokenizer. Decoding token by token breaks multi-byte characters (one emoji can
 * span several byte-level tokens) and, for SentencePiece-style decoders, the leading space of a
 * word, so it re-decodes a short window that starts one already-emitted chunk back and only
 * emits once the window no longer ends in a partial character (U+FFFD).
 */
export function createTextStreamer(
  tokenizer: Tokenizer,
  opts: { skipSpecialTokens?: boolean } = {},
): TextStreamer {
  const decodeOpts = { skipSpecialTokens: opts.skipSpecialTokens ?? true };
  // The last emitted chunk's ids (decoding context) followed by the ids not emitted yet.
  let window: number[] = [];
  let emitted = 0; // how many ids at the start of `window` were already emitted

  const decodeWindow = (): { prefix: string; full: string } => ({
    prefix: tokenizer.decode(window.slice(0, emitted), decodeOpts),
    full: tokenizer.decode(window, decodeOpts),
  });

  return {
    push(id: number): string {
      window.push(id);
      const { prefix, full } = decodeWindow();
      if (full.length <= prefix.length || full.endsWith('\uFFFD')) return '';
      window = window.slice(emitted);
      emitted = window.length;
      return full.slice(prefix.length);
    },
    flush(): string {
      const { prefix, full } = decodeWindow();
      window = [];
      emitted = 0;
      return full.slice(prefix.length);
    },
  };
}
