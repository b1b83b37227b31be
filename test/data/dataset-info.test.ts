/**
 * LLaMA-Factory's dataset_info.json: names resolved to files with their format, columns and
 * role tags; a name that is neither a file nor listed, and hub-only entries, are one-line errors.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadDataset } from '../../src/data/dataset.ts';
import { resolveDatasets } from '../../src/data/dataset-info.ts';
import { createTemplate } from '../../src/data/templates.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { CharTokenizer } from '../fixtures/data/fake-tokenizer.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'lf-dsinfo-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const write = (file: string, value: unknown) =>
  writeFileSync(join(dir, file), typeof value === 'string' ? value : JSON.stringify(value));

write('qa.json', [{ question: 'Q1', context: 'ctx', answer: 'A1', sys: 'S' }]);
write(
  'chat.jsonl',
  JSON.stringify({
    messages: [
      { role: 'customer', content: 'hello' },
      { role: 'agent', content: 'hi there' },
    ],
  }) + '\n',
);
mkdirSync(join(dir, 'parts'));
writeFileSync(join(dir, 'parts', 'a.json'), JSON.stringify([{ instruction: 'i1', output: 'o1' }]));
writeFileSync(
  join(dir, 'parts', 'b.jsonl'),
  JSON.stringify({ instruction: 'i2', output: 'o2' }) + '\n',
);
write('dataset_info.json', {
  qa: {
    file_name: 'qa.json',
    columns: { prompt: 'question', query: 'context', response: 'answer', system: 'sys' },
  },
  support: {
    file_name: 'chat.jsonl',
    formatting: 'sharegpt',
    columns: { messages: 'messages' },
    tags: {
      role_tag: 'role',
      content_tag: 'content',
      user_tag: 'customer',
      assistant_tag: 'agent',
    },
  },
  folder: { file_name: 'parts' },
  from_hub: { hf_hub_url: 'someone/data' },
  prefs: { file_name: 'qa.json', ranking: true },
});

test('names resolve through dataset_info.json (alpaca columns, sharegpt tags, a folder)', async () => {
  const tokenizer = new CharTokenizer();
  const dataset = await loadDataset({
    files: resolveDatasets(['qa', 'support', 'folder'], dir),
    template: createTemplate('tutorial', tokenizer),
    valSize: 0,
  });
  assert.equal(dataset.stats.records, 4);
  const texts = dataset.train.map((e) => tokenizer.decode([...e.inputIds]));
  assert.ok(
    texts.some((t) => t.startsWith('S\nHuman: Q1\nctx\n\nAssistant: A1')),
    texts.join(' | '),
  );
  assert.ok(
    texts.some((t) => t.startsWith('Human: hello\n\nAssistant: hi there')),
    texts.join(' | '),
  );
  assert.ok(texts.some((t) => t.includes('Human: i2')));
});

test('a file path is itself; unknown names and hub-only or ranking entries are refused', () => {
  const data = join(ROOT, 'examples', 'identity.json');
  assert.deepEqual(resolveDatasets([data], dir), [data]);
  const refused = (names: string[], message: RegExp, from = dir) =>
    assert.throws(
      () => resolveDatasets(names, from),
      (err: unknown) => err instanceof LoraforgeError && message.test(err.message),
    );
  refused(
    ['nope'],
    /dataset nope: no such file, and no dataset of that name in .*dataset_info\.json/,
  );
  refused(['from_hub'], /"from_hub" is fetched from hf_hub_url/);
  refused(['prefs'], /"prefs" is a preference \(ranking\) dataset/);
  refused(
    ['qa'],
    /no such file, and no .*dataset_info\.json to look the name up in/,
    join(dir, 'parts'),
  );
});

test('train --dataset <name> --dataset-dir <folder> through the real bin', () => {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bin', 'loraforge.js'),
      'train',
      '--model',
      join(ROOT, 'assets', 'tiny-chat'),
      '--dataset',
      'qa,support,folder',
      '--dataset-dir',
      dir,
      '--val-size',
      '0',
      '--max-steps',
      '1',
      '--threads',
      '1',
      '--output-dir',
      join(dir, 'run'),
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /dataset: 4 train \/ 0 validation examples/);
});
