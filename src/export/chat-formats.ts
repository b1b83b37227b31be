/**
 * The prompt template an adapter was trained with, written for other runtimes: as a Jinja chat
 * template (GGUF's `tokenizer.chat_template`, read by llama.cpp, LM Studio, Ollama's importer)
 * and as an Ollama Go template (Modelfile TEMPLATE), plus the stop strings. Both reproduce
 * loraforge's own prompt for a conversation (data/template-tutorial.ts, ChatML), so the exported
 * model is prompted as it was trained.
 */
import type { PromptTemplate } from '../data/templates.ts';
import { LoraforgeError } from '../util/errors.ts';

function jinjaString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * Every output is an expression: chat templates run with trim_blocks (transformers, llama.cpp),
 * which would drop a literal newline that follows a tag.
 */
function tutorialJinja(eos: string): string {
  return (
    '{% set ns = namespace(turn=0) %}{% for m in messages %}' +
    "{% if m.role == 'system' %}{{ (m.content | trim) + '\\n' }}" +
    "{% elif m.role == 'user' %}{% if ns.turn %}{{ '\\n' }}{% endif %}" +
    "{{ ('Human: ' + m.content) | trim }}{{ '\\n\\nAssistant: ' }}{% set ns.turn = 1 %}" +
    `{% elif m.role == 'assistant' %}{{ m.content + ${jinjaString(eos)} }}{% endif %}{% endfor %}`
  );
}

/**
 * Ollama renders Go's text/template over `.Messages` (role, content). Go templates have no trim,
 * so the user's text goes in as it is (loraforge strips whitespace around "Human: …"; the two
 * agree unless a message ends in whitespace).
 */
function tutorialGo(eos: string): string {
  return (
    '{{ $turn := 0 }}{{ range .Messages }}' +
    '{{ if eq .Role "system" }}{{ .Content }}\n' +
    '{{ else if eq .Role "user" }}{{ if $turn }}\n{{ end }}Human: {{ .Content }}\n\nAssistant: {{ $turn = 1 }}' +
    `{{ else if eq .Role "assistant" }}{{ .Content }}${eos}{{ end }}{{ end }}`
  );
}

const CHATML_GO =
  '{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n';

/** The training template as Jinja, for GGUF's tokenizer.chat_template. */
export function ggufChatTemplate(
  template: PromptTemplate,
  tokenText: (id: number) => string,
): string {
  if (template.name === 'tutorial') return tutorialJinja(tokenText(template.stopTokenIds[0]!));
  return template.toJSON().chatTemplate!;
}

export interface OllamaChatFormat {
  /** Go template for an Ollama Modelfile. */
  goTemplate: string;
  /** Texts that end a reply (Modelfile `PARAMETER stop`). */
  stops: string[];
  /** System prompt the template adds when a conversation has none (Modelfile `SYSTEM`). */
  defaultSystem?: string;
}

/** The training template for an Ollama Modelfile (TEMPLATE, stops, default SYSTEM). */
export function ollamaChatFormat(
  template: PromptTemplate,
  tokenText: (id: number) => string,
): OllamaChatFormat {
  const stopTokens = template.stopTokenIds.map(tokenText);
  const stops = [...new Set([...stopTokens, ...template.stopStrings])];
  if (template.name === 'tutorial') return { goTemplate: tutorialGo(stopTokens[0]!), stops };
  if (template.name === 'chatml') return { goTemplate: CHATML_GO, stops };
  // A model's own Jinja template has no general Go translation; ChatML-shaped ones do, also
  // those that add a default system prompt when none is given (Qwen2-Instruct): Ollama's
  // SYSTEM does the same.
  const probe = [
    { role: 'user' as const, content: 'a' },
    { role: 'assistant' as const, content: 'b' },
    { role: 'user' as const, content: 'c' },
  ];
  const chatml = (messages: { role: string; content: string }[]) =>
    messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') +
    '<|im_start|>assistant\n';
  const withSystem = [{ role: 'system' as const, content: 's' }, ...probe];
  if (template.renderPrompt(withSystem) === chatml(withSystem)) {
    const plain = template.renderPrompt(probe);
    if (plain === chatml(probe)) return { goTemplate: CHATML_GO, stops };
    const m = /^<\|im_start\|>system\n([\s\S]*?)<\|im_end\|>\n/.exec(plain);
    if (m && plain === chatml([{ role: 'system', content: m[1]! }, ...probe])) {
      return { goTemplate: CHATML_GO, stops, defaultSystem: m[1] };
    }
  }
  throw new LoraforgeError(
    "the model's chat template has no Ollama equivalent in loraforge (missing: a Go TEMPLATE for it)",
    'train and export with --template chatml or --template tutorial, or write the Modelfile TEMPLATE by hand',
  );
}
