/**
 * A merged model must be prompted as its adapter was trained, or the tuned answers are lost
 * (a base with its own chat template would switch the merged model to it). So the merged folder
 * records the training template in loraforge.json, which `chat`, `generate`, `eval` and `serve`
 * read as they read an adapter's, and, when the base has a chat template, the training one is
 * written over it in tokenizer_config.json so transformers and vLLM prompt it the same way.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chatTemplateSource, type PromptTemplateSpec } from '../data/templates.ts';
import { readJsonObject } from '../io/hf-folder.ts';
import { LORAFORGE_META_FILE, readAdapterMeta } from '../peft/io.ts';

const TOKENIZER_CONFIG = 'tokenizer_config.json';
const TEMPLATE_FILE = 'chat_template.jinja';

export interface MergedTemplatePlan {
  /** Files to write into the merged folder (replacing the base's copies). */
  files: Record<string, string>;
  /** What was done, one line each, for the user. */
  notes: string[];
}

const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

export function mergedTemplateFiles(
  baseDir: string,
  adapterDir: string,
  mergedFrom: { model: string; adapter: string },
): MergedTemplatePlan {
  const meta = readAdapterMeta(adapterDir);
  const spec = meta.template as PromptTemplateSpec | undefined;
  const record = { template: spec, baseModel: meta.baseModel, mergedFrom };
  const files: Record<string, string> = { [LORAFORGE_META_FILE]: json(record) };
  if (!spec) {
    return {
      files,
      notes: [
        `the adapter records no training template (no ${LORAFORGE_META_FILE}); the merged model keeps the base's prompt format`,
      ],
    };
  }
  const notes = [`training template (${spec.name}) recorded in ${LORAFORGE_META_FILE}`];
  const tokenizerConfigPath = join(baseDir, TOKENIZER_CONFIG);
  const tokenizerConfig = existsSync(tokenizerConfigPath)
    ? readJsonObject(tokenizerConfigPath)
    : {};
  const templateFilePath = join(baseDir, TEMPLATE_FILE);
  const baseTemplate =
    tokenizerConfig.chat_template ??
    (existsSync(templateFilePath) ? readFileSync(templateFilePath, 'utf8') : undefined);
  if (baseTemplate === undefined) {
    notes.push(
      `the base has no chat template, so ${TOKENIZER_CONFIG} is unchanged (loraforge reads ${LORAFORGE_META_FILE}; other tools need the prompt format given explicitly)`,
    );
    return { files, notes };
  }
  const source = chatTemplateSource(spec);
  if (source === baseTemplate) {
    notes.push(`the base's chat template is the training one: ${TOKENIZER_CONFIG} unchanged`);
    return { files, notes };
  }
  if (tokenizerConfig.chat_template !== undefined) {
    files[TOKENIZER_CONFIG] = json({ ...tokenizerConfig, chat_template: source });
  }
  if (existsSync(templateFilePath)) files[TEMPLATE_FILE] = source;
  notes.push(
    `the base's chat template was replaced by the training template (${spec.name}) in ${Object.keys(
      files,
    )
      .filter((file) => file !== LORAFORGE_META_FILE)
      .join(' and ')}, so transformers and vLLM prompt the merged model as the adapter was trained`,
  );
  return { files, notes };
}
