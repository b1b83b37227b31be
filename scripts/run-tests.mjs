// Type-checks (tsc --noEmit: tsx strips types without checking them), then runs every
// test/**/*.test.ts with Node's own test runner (Node 20's --test has no glob support).
// With arguments, runs only the test files whose path contains one of them, without the type-check.
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function findTests(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return findTests(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

const filter = process.argv.slice(2);
if (filter.length === 0) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const check = spawnSync(process.execPath, [tsc, '--noEmit'], { stdio: 'inherit' });
  if (check.status !== 0) {
    console.error('type-check failed (tsc --noEmit)');
    process.exit(check.status ?? 1);
  }
}
const files = findTests('test')
  .filter((f) => filter.length === 0 || filter.some((s) => f.includes(s)))
  .sort();
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
