/**
 * `--format ollama`: the folder's Modelfile TEMPLATE, rendered as Ollama renders Go templates
 * (go-template.ts, a subset renderer written for these tests), equals loraforge's prompt for a
 * two-turn conversation, with and without a system prompt, for the tutorial and ChatML templates;
 * the GGUF's Jinja chat template renders the same text.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ChatMessage } from '../../src/data/templates.ts';
import { templateFromSpec } from '../../src/data/templates.ts';
import { ChatTemplate } from '../../src/io/chat-template.ts';
import { GgufReader } from '../../src/io/gguf/reader.ts';
import { loadTokenizer, type HfTokenizer } from '../../src/io/tokenizer.ts';
import { readAdapterMeta } from '../../src/peft/io.ts';
import { GOLDEN } from '../helpers.ts';
import { IDENTITY_ADAPTER, loraforge, TINY_CHAT } from './fixtures.ts';
import { renderGoTemplate } from './go-template.ts';

let dir: string;
let tokenizer: HfTokenizer;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lf-ollama-'));
  tokenizer = await loadTokenizer(TINY_CHAT);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The Modelfile's directives as [name, argument] (PARAMETER named with its key), arguments
 * unquoted: """…""" (may span lines), "…", or the rest of the line, as Ollama's parser reads them.
 */
function parseModelfile(text: string): [string, string][] {
  const out: [string, string][] = [];
  let pos = 0;
  const word = () => {
    const m = /^[ \t\n]*(\S+)/.exec(text.slice(pos))!;
    pos += m[0].length;
    return m[1]!;
  };
  while (text.slice(pos).trim()) {
    let name = word();
    if (name === 'PARAMETER') name += ` ${word()}`;
    pos += /^ */.exec(text.slice(pos))![0].length;
    const rest = text.slice(pos);
    const m = /^"""([\s\S]*?)"""|^"((?:[^"\\\n]|\\.)*)"|^(.*)/.exec(rest)!;
    out.push([name, m[1] ?? m[2] ?? m[3]!]);
    pos += m[0].length;
  }
  return out;
}

const TWO_TURNS: ChatMessage[] = [
  { role: 'user', content: 'Who are you?' },
  { role: 'assistant', content: 'I am 小李.' },
  { role: 'user', content: '谁开发了你？' },
];
const WITH_SYSTEM: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, ...TWO_TURNS];

/** As Ollama does: the Modelfile's SYSTEM joins a conversation that has no system message. */
function ollamaRender(template: string, messages: ChatMessage[], defaultSystem?: string): string {
  if (defaultSystem !== undefined && !messages.some((m) => m.role === 'system')) {
    messages = [{ role: 'system', content: defaultSystem }, ...messages];
  }
  const Messages = messages.map((m) => ({ Role: m.role, Content: m.content }));
  const system = messages.find((m) => m.role === 'system')?.content ?? '';
  return renderGoTemplate(template, { Messages, System: system, Prompt: '', Response: '' });
}

function exportOllama(adapterDir: string, out: string, extra: string[] = []): [string, string][] {
  const r = loraforge([
    'export',
    '-m',
    TINY_CHAT,
    '-a',
    adapterDir,
    '--format',
    'ollama',
    '--type',
    'q8_0',
    '-o',
    out,
    ...extra,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ollama create \S+ -f \S+Modelfile/);
  return parseModelfile(readFileSync(join(out, 'Modelfile'), 'utf8'));
}

test("tutorial adapter: model.gguf + adapter.gguf, ADAPTER, stops, and a TEMPLATE that renders loraforge's prompt", () => {
  const out = join(dir, 'identity');
  const directives = exportOllama(IDENTITY_ADAPTER, out);
  const get = (name: string) => directives.filter(([d]) => d === name).map(([, v]) => v);
  assert.deepEqual(get('FROM'), ['./model.gguf']);
  assert.deepEqual(get('ADAPTER'), ['./adapter.gguf']);
  assert.deepEqual(get('PARAMETER stop'), ['<|im_end|>', '\nHuman:']);
  assert.equal(GgufReader.open(join(out, 'adapter.gguf')).scalar('general.type'), 'adapter');
  const model = GgufReader.open(join(out, 'model.gguf'));
  assert.equal(model.tensor('blk.0.attn_q.weight').type.name, 'Q8_0');

  const template = templateFromSpec(readAdapterMeta(IDENTITY_ADAPTER).template, tokenizer);
  const jinja = new ChatTemplate(String(model.scalar('tokenizer.chat_template')), {});
  for (const messages of [TWO_TURNS, WITH_SYSTEM]) {
    const expected = template.renderPrompt(messages);
    assert.equal(ollamaRender(get('TEMPLATE')[0]!, messages), expected);
    assert.equal(jinja.render(messages, { addGenerationPrompt: true }), expected);
  }
  assert.equal(
    template.renderPrompt(WITH_SYSTEM),
    'Be brief.\nHuman: Who are you?\n\nAssistant: I am 小李.<|im_end|>\nHuman: 谁开发了你？\n\nAssistant: ',
  );
});

test('ChatML adapter merged (--merge): one GGUF, no ADAPTER, and the ChatML TEMPLATE', () => {
  const adapterDir = join(dir, 'chatml-adapter');
  cpSync(IDENTITY_ADAPTER, adapterDir, { recursive: true });
  const spec = { name: 'chatml', specialTokens: { eos: '<|im_end|>' } };
  writeFileSync(join(adapterDir, 'loraforge.json'), JSON.stringify({ template: spec }));
  const out = join(dir, 'chatml');
  const directives = exportOllama(adapterDir, out, ['--merge']);
  assert.equal(existsSync(join(out, 'adapter.gguf')), false);
  assert.equal(directives.filter(([d]) => d === 'ADAPTER').length, 0);
  const template = templateFromSpec(spec, tokenizer);
  const goTemplate = directives.find(([d]) => d === 'TEMPLATE')![1];
  for (const messages of [TWO_TURNS, WITH_SYSTEM]) {
    assert.equal(ollamaRender(goTemplate, messages), template.renderPrompt(messages));
  }
  assert.deepEqual(
    directives.filter(([d]) => d === 'PARAMETER stop').map(([, v]) => v),
    ['<|im_end|>'],
  );
});

test("Qwen2-Instruct's own chat template (default system prompt): ChatML TEMPLATE + SYSTEM", () => {
  const adapterDir = join(dir, 'qwen2-template-adapter');
  cpSync(IDENTITY_ADAPTER, adapterDir, { recursive: true });
  const chatTemplate = readFileSync(
    join(GOLDEN, 'chat_template', 'qwen2_chat_template.jinja'),
    'utf8',
  );
  const spec = { name: 'model', chatTemplate, specialTokens: { eos: '<|im_end|>' } };
  writeFileSync(join(adapterDir, 'loraforge.json'), JSON.stringify({ template: spec }));
  const out = join(dir, 'qwen2-template');
  const directives = exportOllama(adapterDir, out, ['--merge']);
  const system = directives.find(([d]) => d === 'SYSTEM')?.[1];
  assert.equal(system, 'You are a helpful assistant.');
  const template = templateFromSpec(spec, tokenizer);
  const goTemplate = directives.find(([d]) => d === 'TEMPLATE')![1];
  for (const messages of [TWO_TURNS, WITH_SYSTEM]) {
    assert.equal(ollamaRender(goTemplate, messages, system), template.renderPrompt(messages));
  }
  const gguf = GgufReader.open(join(out, 'model.gguf'));
  assert.equal(gguf.scalar('tokenizer.chat_template'), chatTemplate);
});

test('an existing output folder is refused without --overwrite', () => {
  const out = join(dir, 'identity');
  const r = loraforge([
    'export',
    '-m',
    TINY_CHAT,
    '-a',
    IDENTITY_ADAPTER,
    '--format',
    'ollama',
    '-o',
    out,
  ]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /already exists.*\n?.*--overwrite/);
});
