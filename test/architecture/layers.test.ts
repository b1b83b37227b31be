/**
 * No import runs against the layer order of docs/ARCHITECTURE.md. The order is read from the one
 * line of that file that states it ("Import order, lowest first: …"), so the document and this
 * check cannot drift apart; every relative import in src/ (static, re-export, side-effect and
 * dynamic) is checked against it. The CLI is a user of the library like any other: it imports
 * library code only through the public entry (src/index.ts), which keeps that API complete.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');
const ORDER_LINE = /^Import order, lowest first: (.+)$/m;

/** Layer rank of each unit of src/ (a folder, or a file at its top such as index.ts). */
function parseOrder(markdown: string): Map<string, number> {
  const line = ORDER_LINE.exec(markdown);
  assert.ok(line, 'docs/ARCHITECTURE.md states the import order on one line');
  const rank = new Map<string, number>();
  line[1]!.split('→').forEach((layer, i) => {
    for (const unit of layer.split(',')) rank.set(unit.replace(/`/g, '').trim(), i);
  });
  return rank;
}

/** Relative module specifiers of a source file: `from '…'`, `import '…'`, `import('…')`. */
function relativeImports(source: string): string[] {
  const found = source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g);
  return [...found].map((m) => m[1]!);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  );
}

/** Every import in `src` that reaches a layer above its own, and every unit the order leaves out. */
function layerViolations(src: string, rank: Map<string, number>): string[] {
  const unitOf = (file: string) => relative(src, file).split(sep)[0]!;
  const problems = readdirSync(src)
    .filter((unit) => !rank.has(unit))
    .map((unit) => `src/${unit} is missing from the import order`);
  for (const file of sourceFiles(src)) {
    const from = unitOf(file);
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const to = unitOf(resolve(dirname(file), spec));
      const where = `${relative(src, file)} imports ${spec}`;
      if (to.startsWith('..')) problems.push(`${where}: outside src/`);
      else if ((rank.get(to) ?? Infinity) > (rank.get(from) ?? -Infinity)) {
        problems.push(`${where}: ${to} is above ${from}`);
      } else if (from === 'cli' && to !== 'cli' && to !== 'index.ts') {
        // The CLI is a user of the library: it sees only the public API.
        problems.push(`${where}: the CLI imports only from index.ts`);
      }
    }
  }
  return problems;
}

const order = parseOrder(readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8'));

test('relativeImports finds static, type, re-export, side-effect and dynamic imports', () => {
  const source = [
    "import { a } from '../x.ts';",
    "import type { B } from './y.ts';",
    "export { c } from '../../z.ts';",
    "import './side.ts';",
    "const m = await import('../../dyn.ts');",
    "import { d } from 'commander';",
  ].join('\n');
  assert.deepEqual(relativeImports(source), [
    '../x.ts',
    './y.ts',
    '../../z.ts',
    './side.ts',
    '../../dyn.ts',
  ]);
});

test('every import in src/ follows the layer order of docs/ARCHITECTURE.md', () => {
  assert.deepEqual(layerViolations(join(ROOT, 'src'), order), []);
});

test('the layer check finds an upward import, a CLI import past index.ts and an unlisted folder', () => {
  const src = mkdtempSync(join(tmpdir(), 'lf-layers-'));
  try {
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(src, path)), { recursive: true });
      writeFileSync(join(src, path), text);
    };
    write('engine/tensor.ts', "import type { X } from '../models/decoder.ts';\n");
    write('models/decoder.ts', "export { a } from '../engine/tensor.ts';\n");
    write('cli/main.ts', "import '../index.ts';\nconst m = await import('../peft/merge.ts');\n");
    write('peft/merge.ts', '');
    write('index.ts', "export * from './peft/merge.ts';\n");
    write('plugins/x.ts', '');
    assert.deepEqual(layerViolations(src, order).sort(), [
      'cli/main.ts imports ../peft/merge.ts: the CLI imports only from index.ts',
      'engine/tensor.ts imports ../models/decoder.ts: models is above engine',
      'src/plugins is missing from the import order',
    ]);
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
});
