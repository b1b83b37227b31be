/**
 * LLaMA-Factory's `dataset_info.json`: datasets named in a config (`dataset: identity,alpaca_zh`)
 * are looked up in `<dataset_dir>/dataset_info.json`, which gives each one's file, format
 * (`formatting`: alpaca | sharegpt), column names and ShareGPT role tags. Their names are
 * translated here into this project's (prompt → instruction, query → input, response → output,
 * messages → conversations, role_tag → from, content_tag → value).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { readJsonObject } from '../io/hf-folder.ts';
import { LoraforgeError } from '../util/errors.ts';
import type { ColumnMapping, DatasetFormat, RoleTags } from './formats.ts';
import { isObject } from './records.ts';

export const DATASET_INFO_FILE = 'dataset_info.json';

/** One file to read, with how to read it (fields left out: the command's own settings). */
export interface DatasetSource {
  file: string;
  format?: DatasetFormat;
  columns?: ColumnMapping;
  roleTags?: RoleTags;
}

const ALPACA_COLUMNS: Record<string, keyof ColumnMapping> = {
  prompt: 'instruction',
  query: 'input',
  response: 'output',
  system: 'system',
  history: 'history',
};

const SHAREGPT_COLUMNS: Record<string, keyof ColumnMapping> = {
  messages: 'conversations',
  system: 'system',
};

const SHAREGPT_TAGS: Record<string, keyof ColumnMapping> = {
  role_tag: 'from',
  content_tag: 'value',
};

const ROLE_TAGS: Record<string, keyof RoleTags> = {
  user_tag: 'user',
  assistant_tag: 'assistant',
  system_tag: 'system',
};

/** Hub-hosted or scripted datasets: nothing to read without network access to those hubs. */
const REMOTE_KEYS = ['hf_hub_url', 'ms_hub_url', 'om_hub_url', 'script_url', 'cloud_file_name'];

/** Data files in a folder that `file_name` names (LLaMA-Factory reads every file in it). */
const DATA_FILE = /\.(json|jsonl|csv)$/;

/**
 * The entries of `dataset` (comma-separated) as files: a file inside `datasetDir`, else an
 * existing path as given; any other name is looked up in `<datasetDir>/dataset_info.json`.
 */
export function resolveDatasets(
  entries: readonly string[],
  datasetDir: string,
): (string | DatasetSource)[] {
  let info: Record<string, unknown> | undefined;
  const infoPath = join(datasetDir, DATASET_INFO_FILE);
  return entries.flatMap((entry): (string | DatasetSource)[] => {
    const inDir = isAbsolute(entry) ? entry : join(datasetDir, entry);
    if (existsSync(inDir) && statSync(inDir).isFile()) return [inDir];
    if (existsSync(entry)) return [entry];
    if (DATA_FILE.test(entry)) {
      throw new LoraforgeError(
        `${entry}: dataset file not found`,
        `dataset files are read as given, or from dataset_dir (${datasetDir})`,
      );
    }
    if (!existsSync(infoPath)) {
      throw new LoraforgeError(
        `dataset ${entry}: no such file, and no ${infoPath} to look the name up in`,
        'give a .json / .jsonl / .csv file, or set dataset_dir to the folder holding dataset_info.json',
      );
    }
    info ??= readJsonObject(infoPath);
    return datasetSources(entry, info, infoPath, datasetDir);
  });
}

function datasetSources(
  name: string,
  info: Record<string, unknown>,
  infoPath: string,
  datasetDir: string,
): DatasetSource[] {
  const spec = info[name];
  const where = `${infoPath}: "${name}"`;
  if (spec === undefined) {
    throw new LoraforgeError(
      `dataset ${name}: no such file, and no dataset of that name in ${infoPath}`,
      `datasets there: ${Object.keys(info).join(', ') || '(none)'}`,
    );
  }
  if (!isObject(spec)) throw new LoraforgeError(`${where} must be an object`);
  const fileName = spec.file_name;
  if (typeof fileName !== 'string') {
    const remote = REMOTE_KEYS.find((key) => key in spec);
    throw new LoraforgeError(
      remote
        ? `${where} is fetched from ${remote}, which loraforge cannot download`
        : `${where} has no file_name`,
      'download the data, save it as .json / .jsonl / .csv and give it a file_name',
    );
  }
  if (spec.ranking === true) {
    throw new LoraforgeError(
      `${where} is a preference (ranking) dataset; loraforge trains on instruction data only`,
    );
  }
  const formatting = spec.formatting ?? 'alpaca';
  if (formatting !== 'alpaca' && formatting !== 'sharegpt') {
    throw new LoraforgeError(
      `${where}: formatting "${String(formatting)}" is not alpaca or sharegpt`,
    );
  }
  const columns: ColumnMapping = {};
  const roleTags: RoleTags = {};
  const renames = formatting === 'alpaca' ? ALPACA_COLUMNS : SHAREGPT_COLUMNS;
  for (const [key, value] of Object.entries(objectField(spec, 'columns', where))) {
    if (typeof value !== 'string')
      throw new LoraforgeError(`${where}: columns.${key} must be a string`);
    const field = renames[key];
    // Multimodal and tool columns (images, videos, tools, ...) have nothing to map to here.
    if (!field) {
      throw new LoraforgeError(
        `${where}: column "${key}" is not supported for ${formatting} data`,
        `supported: ${Object.keys(renames).join(', ')}`,
      );
    }
    columns[field] = value;
  }
  for (const [key, value] of Object.entries(objectField(spec, 'tags', where))) {
    if (typeof value !== 'string')
      throw new LoraforgeError(`${where}: tags.${key} must be a string`);
    if (SHAREGPT_TAGS[key]) columns[SHAREGPT_TAGS[key]] = value;
    else if (ROLE_TAGS[key]) roleTags[ROLE_TAGS[key]] = value;
    // observation_tag / function_tag: tool turns, which this project does not train on.
    else throw new LoraforgeError(`${where}: tag "${key}" is not supported`);
  }
  const path = join(datasetDir, fileName);
  if (!existsSync(path)) throw new LoraforgeError(`${where}: file_name ${path} does not exist`);
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((file) => DATA_FILE.test(file))
        .sort()
        .map((file) => join(path, file))
    : [path];
  if (files.length === 0)
    throw new LoraforgeError(`${where}: ${path} holds no .json / .jsonl / .csv file`);
  return files.map((file) => ({ file, format: formatting, columns, roleTags }));
}

function objectField(
  spec: Record<string, unknown>,
  key: string,
  where: string,
): Record<string, unknown> {
  const value = spec[key] ?? {};
  if (!isObject(value)) throw new LoraforgeError(`${where}: ${key} must be an object`);
  return value;
}
