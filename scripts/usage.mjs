// Preloaded by the benchmark and build scripts of package.json (`node --import ./scripts/usage.mjs
// <script>`): with --help or -h, prints the script's leading comment, which is its usage, and
// exits before the script runs. Without it a mistaken `--help` starts the real work (a benchmark
// can take many minutes).
import { readFileSync } from 'node:fs';

/** The text of the file's first comment: a block comment, or a run of line comments. */
export function leadingComment(source) {
  const block = /^\s*\/\*\*?([\s\S]*?)\*\//.exec(source);
  if (block) return block[1].replace(/^[ \t]*\* ?/gm, '').trim();
  const lines = /^(?:[ \t]*\/\/.*\n?)+/.exec(source.replace(/^#!.*\n/, ''));
  return lines ? lines[0].replace(/^[ \t]*\/\/ ?/gm, '').trim() : '';
}

const script = process.argv[1];
if (script && process.argv.slice(2).some((arg) => arg === '--help' || arg === '-h')) {
  console.log(leadingComment(readFileSync(script, 'utf8')) || `no usage written in ${script}`);
  process.exit(0);
}
