/**
 * A small renderer for the part of Go's text/template that Ollama chat templates use, written for
 * these tests (no npm package renders Go templates without Go itself): text; actions with `{{-`
 * / `-}}` whitespace trimming; `range`, `if` / `else if` / `else`, `end`; variables declared with
 * `:=` and assigned with `=` (visible to the end of the enclosing block, as in Go); pipelines of
 * `.Field`, `.`, `$var`, `$var.Field`, string and number literals, and the functions `eq`, `ne`,
 * `not`, `and`, `or`, `len`. Truth follows Go: false, 0, "", nil and empty lists are false.
 * Anything else throws, so a template outside the subset fails the test instead of passing it.
 */

type Value = unknown;
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'output'; expr: string }
  | { kind: 'declare'; name: string; expr: string; assign: boolean }
  | { kind: 'if'; branches: { expr: string | null; body: Node[] }[] }
  | { kind: 'range'; expr: string; body: Node[] };

interface Action {
  text: string;
}

/** Splits into text and action pieces, applying the trim markers. */
function lex(src: string): (string | Action)[] {
  const out: (string | Action)[] = [];
  let pos = 0;
  while (pos < src.length) {
    const open = src.indexOf('{{', pos);
    if (open < 0) {
      out.push(src.slice(pos));
      break;
    }
    let text = src.slice(pos, open);
    const close = src.indexOf('}}', open);
    if (close < 0) throw new Error('unclosed action');
    let inner = src.slice(open + 2, close);
    if (inner.startsWith('- ')) {
      text = text.trimEnd();
      inner = inner.slice(1);
    }
    let trimNext = false;
    if (inner.endsWith(' -')) {
      trimNext = true;
      inner = inner.slice(0, -1);
    }
    if (text) out.push(text);
    out.push({ text: inner.trim() });
    pos = close + 2;
    if (trimNext) while (pos < src.length && /\s/.test(src[pos]!)) pos++;
  }
  return out;
}

function parse(pieces: (string | Action)[]): Node[] {
  let i = 0;
  const block = (): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (i < pieces.length) {
      const p = pieces[i++]!;
      if (typeof p === 'string') {
        nodes.push({ kind: 'text', text: p });
        continue;
      }
      const a = p.text;
      if (a === 'end' || a === 'else' || a.startsWith('else if ')) return { nodes, end: a };
      if (a.startsWith('if ')) {
        const branches: { expr: string | null; body: Node[] }[] = [];
        let expr: string | null = a.slice(3);
        for (;;) {
          const { nodes: body, end } = block();
          branches.push({ expr, body });
          if (end === 'end') break;
          if (end === 'else') expr = null;
          else if (end.startsWith('else if ')) expr = end.slice(8);
          else throw new Error(`unterminated if`);
        }
        nodes.push({ kind: 'if', branches });
      } else if (a.startsWith('range ')) {
        const { nodes: body, end } = block();
        if (end !== 'end') throw new Error('range with else is outside the subset');
        nodes.push({ kind: 'range', expr: a.slice(6), body });
      } else {
        const m = /^(\$\w+)\s*(:=|=)\s*(.+)$/.exec(a);
        if (m) nodes.push({ kind: 'declare', name: m[1]!, expr: m[3]!, assign: m[2] === '=' });
        else nodes.push({ kind: 'output', expr: a });
      }
    }
    return { nodes, end: '' };
  };
  const { nodes, end } = block();
  if (end) throw new Error(`unexpected {{${end}}}`);
  return nodes;
}

function truthy(v: Value): boolean {
  if (Array.isArray(v)) return v.length > 0;
  return v !== false && v !== 0 && v !== '' && v !== null && v !== undefined;
}

class Scope {
  private readonly vars = new Map<string, Value>();
  constructor(private readonly parent?: Scope) {}
  declare(name: string, v: Value): void {
    this.vars.set(name, v);
  }
  assign(name: string, v: Value): void {
    if (this.vars.has(name)) this.vars.set(name, v);
    else if (this.parent) this.parent.assign(name, v);
    else throw new Error(`undefined variable ${name}`);
  }
  get(name: string): Value {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.get(name);
    throw new Error(`undefined variable ${name}`);
  }
}

function field(v: Value, path: string[]): Value {
  return path.reduce((o, k) => {
    if (o === null || typeof o !== 'object') throw new Error(`no field ${k}`);
    return (o as Record<string, Value>)[k];
  }, v);
}

function tokens(expr: string): string[] {
  return expr.match(/"(?:[^"\\]|\\.)*"|[^\s]+/g) ?? [];
}

function operand(tok: string, dot: Value, scope: Scope): Value {
  if (tok.startsWith('"')) return JSON.parse(tok);
  if (/^-?\d+(\.\d+)?$/.test(tok)) return Number(tok);
  if (tok === '.') return dot;
  if (tok.startsWith('.')) return field(dot, tok.slice(1).split('.'));
  if (tok.startsWith('$')) {
    const [name, ...path] = tok.split('.');
    return field(scope.get(name!), path);
  }
  throw new Error(`operand ${tok} is outside the subset`);
}

const FUNCTIONS: Record<string, (...args: Value[]) => Value> = {
  eq: (a, ...bs) => bs.some((b) => a === b),
  ne: (a, b) => a !== b,
  not: (a) => !truthy(a),
  and: (...xs) => xs.find((x) => !truthy(x)) ?? xs[xs.length - 1],
  or: (...xs) => xs.find(truthy) ?? xs[xs.length - 1],
  len: (a) => (a as { length: number }).length,
};

function evaluate(expr: string, dot: Value, scope: Scope): Value {
  const [head, ...rest] = tokens(expr);
  if (head === undefined) throw new Error('empty pipeline');
  const fn = FUNCTIONS[head];
  if (fn) return fn(...rest.map((t) => operand(t, dot, scope)));
  if (rest.length) throw new Error(`pipeline "${expr}" is outside the subset`);
  return operand(head, dot, scope);
}

function show(v: Value): string {
  if (v === null || v === undefined) return '<no value>';
  return String(v);
}

function exec(nodes: Node[], dot: Value, scope: Scope): string {
  let out = '';
  for (const n of nodes) {
    if (n.kind === 'text') out += n.text;
    else if (n.kind === 'output') out += show(evaluate(n.expr, dot, scope));
    else if (n.kind === 'declare') {
      const v = evaluate(n.expr, dot, scope);
      if (n.assign) scope.assign(n.name, v);
      else scope.declare(n.name, v);
    } else if (n.kind === 'if') {
      const branch = n.branches.find(
        (b) => b.expr === null || truthy(evaluate(b.expr, dot, scope)),
      );
      if (branch) out += exec(branch.body, dot, new Scope(scope));
    } else {
      const m = /^(?:(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*)?(.+)$/.exec(n.expr)!;
      const list = evaluate(m[3]!, dot, scope);
      if (!Array.isArray(list)) throw new Error('range over a non-list');
      list.forEach((item, index) => {
        const inner = new Scope(scope);
        if (m[1] && m[2]) {
          inner.declare(m[1], index);
          inner.declare(m[2], item);
        } else if (m[1]) inner.declare(m[1], item);
        out += exec(n.body, item, inner);
      });
    }
  }
  return out;
}

export function renderGoTemplate(src: string, data: Value): string {
  return exec(parse(lex(src)), data, new Scope());
}
