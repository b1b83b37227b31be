// Serves the repository root on 127.0.0.1 for the browser page (npm run build:web first), so the
// page at /web/ can fetch the shipped model (/assets/tiny-chat/) and the dataset (/examples/).
// Usage: npm run serve:web [-- port]   (default 8080; 0 picks a free port)
import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json; charset=utf-8',
  '.safetensors': 'application/octet-stream',
  '.wasm': 'application/wasm',
};

/** The file under ROOT for a URL path, or undefined (outside ROOT, missing, or a folder). */
function fileFor(urlPath: string): string | undefined {
  const path = join(ROOT, normalize(decodeURIComponent(urlPath)));
  if (!path.startsWith(ROOT + '/')) return undefined;
  const file = path.endsWith('/') ? join(path, 'index.html') : path;
  try {
    return statSync(file).isFile() ? file : undefined;
  } catch {
    return undefined;
  }
}

export function serveRepo(port = 8080): Promise<Server> {
  const server = createServer((req, res) => {
    const file = fileFor(new URL(req.url ?? '/', 'http://localhost').pathname);
    if (!file) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      // Cross-origin isolation: the CPU fallback's shared WebAssembly.Memory needs it.
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((done) => server.listen(port, '127.0.0.1', () => done(server)));
}

if (import.meta.filename === process.argv[1]) {
  const server = await serveRepo(Number(process.argv[2] ?? 8080));
  const { port } = server.address() as { port: number };
  console.log(`http://127.0.0.1:${port}/web/`);
}
