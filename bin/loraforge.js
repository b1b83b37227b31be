#!/usr/bin/env node
// The installed package runs the compiled CLI (dist/, plain JavaScript: no TypeScript loader).
// In a checkout of the repository, recognised by src/ being there (the package ships only
// dist/), it runs the TypeScript sources through tsx (a devDependency), so that an edited source
// never runs against a stale dist/. V8 flags the kernels need are set by the library itself.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli/main.ts', import.meta.url);
let cli;
if (existsSync(sources)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(sources.href);
} else {
  cli = await import('../dist/cli/main.js');
}
await cli.main(process.argv);
