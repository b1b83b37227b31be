// Bundles the browser page's code (src/web/main.ts) into web/dist/ with esbuild. The build fails
// if anything in the graph imports a Node built-in: such a module would break in the browser.
// Usage: npm run build:web   (test/web/page.test.ts calls buildWeb() itself)
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { build, type LogLevel, type Plugin } from 'esbuild';

const ROOT = join(import.meta.dirname, '..');
const NODE_BUILTIN = new RegExp(`^(node:|(${builtinModules.join('|')})(/|$))`);

/** Fails the build, naming the importer, when a Node built-in is imported. */
const noNodeBuiltins: Plugin = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: NODE_BUILTIN }, (args) => ({
      errors: [
        {
          text: `${args.path} is a Node built-in, imported by ${relative(ROOT, args.importer)}`,
          notes: [
            {
              text: 'the browser bundle must not reach modules that use the file system or Node APIs',
            },
          ],
        },
      ],
    }));
  },
};

/** Builds web/dist/main.js (and its source map); rejects with esbuild's errors. */
export async function buildWeb(logLevel: LogLevel = 'info'): Promise<void> {
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['src/web/main.ts'],
    outdir: 'web/dist',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    // engine/webgpu/device.ts imports Dawn (the 'webgpu' package) only where navigator.gpu is
    // missing, which never happens in a page that gets this far; left out of the bundle.
    external: ['webgpu'],
    plugins: [noNodeBuiltins],
    logLevel,
  });
}

if (import.meta.filename === process.argv[1]) await buildWeb();
