/**
 * Locates the first syntax error in invalid JSON. Node 20's JSON.parse messages often carry no
 * position (and quote a multi-line excerpt), so dataset errors could not name the line without
 * this. Only called after JSON.parse has failed, so speed does not matter.
 */
export function findJsonSyntaxError(text: string): { offset: number; problem: string } | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.value();
    scanner.whitespace();
    if (scanner.pos < text.length) scanner.fail('unexpected text after the end of the JSON value');
    return undefined;
  } catch (err) {
    if (err instanceof SyntaxFound) return { offset: err.offset, problem: err.problem };
    throw err;
  }
}

class SyntaxFound {
  constructor(
    readonly offset: number,
    readonly problem: string,
  ) {}
}

class Scanner {
  pos = 0;
  constructor(private readonly text: string) {}

  fail(problem: string): never {
    throw new SyntaxFound(this.pos, problem);
  }

  whitespace(): void {
    while (this.pos < this.text.length && ' \t\r\n'.includes(this.text[this.pos]!)) this.pos++;
  }

  /** One whole value; nesting is kept on a stack, not the call stack (200k '[' are valid input). */
  value(): void {
    const closers: string[] = [];
    for (;;) {
      this.whitespace();
      const c = this.text[this.pos];
      if (c === '{' || c === '[') {
        const close = c === '{' ? '}' : ']';
        this.pos++;
        this.whitespace();
        if (this.text[this.pos] !== close) {
          closers.push(close);
          if (close === '}') this.memberName();
          continue; // the first item's value
        }
        this.pos++;
      } else if (c === '"') this.string();
      else if (c !== undefined && /[-0-9]/.test(c)) this.number();
      else if (!['true', 'false', 'null'].some((word) => this.literal(word))) {
        this.fail(c === undefined ? 'unexpected end of file' : `unexpected ${JSON.stringify(c)}`);
      }
      // A value has ended: close containers until one continues with another item.
      for (;;) {
        const close = closers.at(-1);
        if (close === undefined) return;
        this.whitespace();
        const next = this.text[this.pos];
        if (next === close) {
          this.pos++;
          closers.pop();
          continue;
        }
        if (next !== ',')
          this.fail(
            next === undefined
              ? 'unexpected end of file'
              : `expected "," or "${close}", found ${JSON.stringify(next)}`,
          );
        const comma = this.pos++;
        this.whitespace();
        if (this.text[this.pos] === close) {
          this.pos = comma; // report the line of the comma, not of the bracket
          this.fail(`trailing comma before "${close}"`);
        }
        if (close === '}') this.memberName();
        break;
      }
    }
  }

  /** `"name":` of an object member, up to its value. */
  private memberName(): void {
    this.whitespace();
    if (this.text[this.pos] !== '"') this.fail('expected a property name in double quotes');
    this.string();
    this.whitespace();
    if (this.text[this.pos] !== ':') this.fail('expected ":" after the property name');
    this.pos++;
  }

  private string(): void {
    this.pos++;
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined || c === '\n') this.fail('unterminated string');
      if (c < ' ') this.fail('control character in string (escape it, e.g. \\n)');
      if (c === '"') {
        this.pos++;
        return;
      }
      if (c === '\\') {
        const e = this.text[this.pos + 1];
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(this.text.slice(this.pos + 2, this.pos + 6)))
          this.pos += 4;
        else if (e === undefined || !'"\\/bfnrt'.includes(e)) this.fail('invalid escape in string');
        this.pos += 2;
      } else this.pos++;
    }
  }

  private number(): void {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(
      this.text.slice(this.pos, this.pos + 400),
    );
    if (!match) this.fail('invalid number');
    this.pos += match[0].length;
  }

  private literal(word: string): boolean {
    if (!this.text.startsWith(word, this.pos)) return false;
    this.pos += word.length;
    return true;
  }
}
