/**
 * The CLI is a user of the library like any other: it imports library code only through the
 * public entry (src/index.ts), which keeps that API complete and honest.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const SRC = resolve(import.meta.dirname, '..', '..', 'src');
const CLI = join(SRC, 'cli');
const ENTRY = join(SRC, 'index.ts');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Relative specifiers of static imports / re-exports and dynamic import() calls. */
function relativeImports(source: string): string[] {
  const found = source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.[^'"]+)['"]/gm);
  return [...found].map((m) => m[1]!);
}

test('relativeImports finds static, side-effect and dynamic imports', () => {
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

test('src/cli imports library code only from src/index.ts', () => {
  const files = tsFiles(CLI);
  assert.ok(files.length > 5, 'no CLI sources found');
  const deep: string[] = [];
  for (const file of files) {
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      const insideCli = !relative(CLI, target).startsWith('..');
      if (!insideCli && target !== ENTRY) deep.push(`${relative(SRC, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(deep, [], 'import these through src/index.ts (export them there if missing)');
});
