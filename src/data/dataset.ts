import { LoraforgeError } from '../util/errors.ts';
import type { Conversation } from './conversation.ts';
import {
  DEFAULT_CUTOFF_LEN,
  encodeExamples,
  type EncodedExample,
  type EncodeStats,
} from './examples.ts';
import { detectFormat, parseColumnMapping, toConversation, type DatasetFormat } from './formats.ts';
import { fillConversation } from './placeholders.ts';
import type { PromptTemplate } from './prompt-template.ts';
import { DEFAULT_SEED } from '../util/rng.ts';
import { readRecords } from './record-file.ts';
import { DEFAULT_VAL_SIZE, splitIndices } from './split.ts';

/** Dataset files, their format and how they become training examples. */
export interface LoadDatasetOptions {
  /** One or more .json / .jsonl / .csv files, concatenated in order. */
  files: string | readonly string[];
  /** Dataset format; 'auto' (default) detects it per file from the first record. */
  format?: DatasetFormat | 'auto';
  /** Renames fields, e.g. {instruction: "question", output: "answer"}. */
  columns?: Record<string, string>;
  template: PromptTemplate;
  cutoffLen?: number;
  trainOnPrompt?: boolean;
  /** Validation share: a fraction in [0, 1) or a number of examples (default 0.1). */
  valSize?: number;
  seed?: number;
  /** Values for `{{name}}` placeholders in the data (`--set name=小李`). */
  placeholders?: Readonly<Record<string, string>>;
}

/** Counts of what a dataset became: records read, train and validation examples and tokens. */
export interface DatasetStats {
  /** Records read from the files. */
  records: number;
  train: EncodeStats;
  validation: EncodeStats;
}

/** Tokenized training and validation examples, with their counts. */
export interface LoadedDataset {
  train: EncodedExample[];
  validation: EncodedExample[];
  stats: DatasetStats;
}

/**
 * Reads, converts, fills placeholders, splits, tokenizes and truncates a dataset. The split is
 * made on records before tokenizing, so changing cutoffLen or the template keeps the same
 * examples in validation. Refuses a dataset that leaves nothing to train on.
 */
export async function loadDataset(opts: LoadDatasetOptions): Promise<LoadedDataset> {
  const files = typeof opts.files === 'string' ? [opts.files] : opts.files;
  if (files.length === 0) throw new LoraforgeError('no dataset file given');
  const cutoffLen = opts.cutoffLen ?? DEFAULT_CUTOFF_LEN;
  if (!Number.isInteger(cutoffLen) || cutoffLen < 2) {
    throw new LoraforgeError(`cutoff_len ${cutoffLen}: expected a whole number >= 2`);
  }
  const conversations: Conversation[] = [];
  for (const file of files) {
    // A loop, not push(...spread): spreading 100k+ records overflows the call stack.
    for (const conv of await readConversations(file, opts)) conversations.push(conv);
  }
  if (conversations.length === 0) {
    throw new LoraforgeError(`${files.join(', ')}: the dataset has no records`);
  }
  const split = splitIndices(
    conversations.length,
    opts.valSize ?? DEFAULT_VAL_SIZE,
    opts.seed ?? DEFAULT_SEED,
  );
  const encode = (indices: number[]) =>
    encodeExamples(
      indices.map((i) => conversations[i]!),
      opts.template,
      { cutoffLen, trainOnPrompt: opts.trainOnPrompt ?? false },
    );
  const train = encode(split.train);
  const validation = encode(split.validation);
  if (train.examples.length === 0) {
    throw new LoraforgeError(
      `no training example left: all ${train.stats.dropped} have nothing to learn within cutoff_len ${cutoffLen}`,
      'raise cutoff_len, or check that the data has non-empty answers',
    );
  }
  return {
    train: train.examples,
    validation: validation.examples,
    stats: { records: conversations.length, train: train.stats, validation: validation.stats },
  };
}

async function readConversations(file: string, opts: LoadDatasetOptions): Promise<Conversation[]> {
  const records = await readRecords(file);
  const columns = parseColumnMapping(opts.columns ?? {});
  const first = records[0];
  if (!first) return [];
  const format =
    !opts.format || opts.format === 'auto' ? detectFormat(first, columns) : opts.format;
  return records.map((record) =>
    fillConversation(toConversation(record, format, columns), opts.placeholders ?? {}),
  );
}
