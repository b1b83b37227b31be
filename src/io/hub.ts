/**
 * Model resolution: a local folder, else the Hugging Face cache, else a download into that cache.
 *
 * The cache uses huggingface_hub's layout so either tool finds the other's downloads:
 *   models--ORG--NAME/refs/<revision>         commit hash the revision pointed to
 *   models--ORG--NAME/blobs/<etag>            file contents (etag = sha256 for LFS files)
 *   models--ORG--NAME/snapshots/<commit>/<f>  relative symlink to the blob
 * Interrupted transfers stay in `blobs/<etag>.incomplete` and resume with an HTTP Range request.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { LoraforgeError } from '../util/errors.ts';
import { writeFileAtomic } from './atomic.ts';
import {
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
  listWeightFiles,
} from './hf-folder.ts';
import { readWeightMap } from './safetensors.ts';

const DEFAULT_ENDPOINT = 'https://huggingface.co';
/** Fetched when present; a model without them can still be loaded with an explicit tokenizer. */
const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
];
const MAX_ATTEMPTS = 4;
const RETRY_DELAY_MS = 300;
const MAX_REDIRECTS = 10;
const IDLE_TIMEOUT_MS = 60_000;

/** Bytes downloaded so far for one file of a Hugging Face repository. */
export interface DownloadProgress {
  file: string;
  received: number;
  /** Undefined when the server does not say. */
  total: number | undefined;
}

/** Hugging Face Hub cache and download settings. */
export interface ResolveModelOptions {
  /** Branch, tag or commit hash (default `main`). */
  revision?: string;
  /** Default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: $HF_ENDPOINT, else https://huggingface.co (mirrors work too). */
  endpoint?: string;
  /** Default: $HF_TOKEN. Needed for gated and private models. */
  token?: string;
  /** Called as files download. */
  onProgress?: (progress: DownloadProgress) => void;
  /** Injected in tests; defaults to the global fetch. */
  fetchImpl?: typeof fetch;
}

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(env.HF_HOME || join(cacheHome, 'huggingface'), 'hub');
}

export function repoCacheDir(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.split('/').join('--')}`);
}

function isCompleteModel(dir: string): boolean {
  if (!existsSync(join(dir, CONFIG_FILE))) return false;
  try {
    listWeightFiles(dir);
    return true;
  } catch {
    return false;
  }
}

/** The cached snapshot folder of `repoId` at `revision`, if it holds config and all weights. */
export function findCachedModel(
  repoId: string,
  revision = 'main',
  cacheDir = hubCacheDir(),
): string | undefined {
  const repoDir = repoCacheDir(cacheDir, repoId);
  const refPath = join(repoDir, 'refs', revision);
  const commit = existsSync(refPath) ? readFileSync(refPath, 'utf8').trim() : revision;
  const snapshot = join(repoDir, 'snapshots', commit);
  return isCompleteModel(snapshot) ? snapshot : undefined;
}

function looksLikePath(value: string): boolean {
  return (
    isAbsolute(value) ||
    value.startsWith('.') ||
    value.startsWith('~') ||
    value.includes('\\') ||
    value.split('/').length > 2
  );
}

/** Hub ids are `name` or `org/name`; `--` and `..` would break the cache folder naming. */
const REPO_ID = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;

function checkRepoId(value: string): string {
  if (!REPO_ID.test(value) || value.includes('--') || value.includes('..')) {
    throw new LoraforgeError(
      `'${value}' is neither a local folder nor a valid Hugging Face model id`,
      'use a folder path or an id such as Qwen/Qwen2.5-0.5B-Instruct',
    );
  }
  return value;
}

/** Revisions name folders under refs/ (e.g. refs/pr/1), so nothing that could climb out. */
function checkRevision(value: string): string {
  if (!/^[\w.-]+(\/[\w.-]+)*$/.test(value) || value.split('/').includes('..')) {
    throw new LoraforgeError(`invalid revision '${value}'`, 'use a branch, tag or commit hash');
  }
  return value;
}

function isOffline(): boolean {
  return ['1', 'true', 'yes', 'on'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

/** Returns a local folder holding the model `idOrPath` names, downloading it if needed. */
export async function resolveModel(
  idOrPath: string,
  opts: ResolveModelOptions = {},
): Promise<string> {
  if (existsSync(idOrPath)) {
    if (!statSync(idOrPath).isDirectory()) {
      throw new LoraforgeError(`${idOrPath}: is a file, expected a model folder or a model id`);
    }
    return resolve(idOrPath);
  }
  if (looksLikePath(idOrPath)) {
    throw new LoraforgeError(
      `${idOrPath}: no such folder`,
      'pass an existing model folder or a Hugging Face model id such as Qwen/Qwen2.5-0.5B-Instruct',
    );
  }
  const repoId = checkRepoId(idOrPath);
  const revision = checkRevision(opts.revision ?? 'main');
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  const cached = findCachedModel(repoId, revision, cacheDir);
  if (cached) return cached;
  if (isOffline()) {
    throw new LoraforgeError(
      `${repoId}: not in the Hugging Face cache (${cacheDir}) and HF_HUB_OFFLINE is set`,
      'unset HF_HUB_OFFLINE to download it',
    );
  }
  return new ModelDownloader(repoId, revision, cacheDir, opts).run();
}

/** A failure worth retrying: the connection broke, or the server had a transient problem. */
class TransientError extends Error {}

interface RemoteFile {
  /** Where the bytes come from (a CDN URL when the hub redirects there). */
  downloadUrl: string;
  commit: string | undefined;
  etag: string | undefined;
  size: number | undefined;
}

function normalizeEtag(value: string | null): string | undefined {
  const etag = value?.replace(/^W\//, '').replace(/"/g, '');
  // The etag becomes a file name, so only accept what a hash looks like.
  return etag && /^[\w.-]+$/.test(etag) ? etag : undefined;
}

function sizeHeader(value: string | null): number | undefined {
  return value !== null && /^\d+$/.test(value) ? Number(value) : undefined;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

class ModelDownloader {
  private readonly endpoint: string;
  private readonly token: string | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly repoDir: string;
  /** Pinned by the first response, so every file comes from the same commit. */
  private commit: string | undefined;

  constructor(
    private readonly repoId: string,
    private readonly revision: string,
    cacheDir: string,
    private readonly opts: ResolveModelOptions,
  ) {
    this.endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(
      /\/+$/,
      '',
    );
    this.token = opts.token ?? process.env.HF_TOKEN;
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.repoDir = repoCacheDir(cacheDir, repoId);
  }

  async run(): Promise<string> {
    await this.fetchFile(CONFIG_FILE, { required: true });
    for (const file of TOKENIZER_FILES) await this.fetchFile(file, { required: false });
    await this.fetchFile(GENERATION_CONFIG_FILE, { required: false });
    await this.fetchWeights();
    if (this.commit !== this.revision) {
      const refPath = join(this.repoDir, 'refs', this.revision);
      mkdirSync(dirname(refPath), { recursive: true });
      writeFileAtomic(refPath, this.commit!);
    }
    return this.snapshotDir();
  }

  private snapshotDir(): string {
    return join(this.repoDir, 'snapshots', this.commit!);
  }

  private async fetchWeights(): Promise<void> {
    if (await this.fetchFile(WEIGHTS_INDEX_FILE, { required: false })) {
      const weightMap = readWeightMap(join(this.snapshotDir(), WEIGHTS_INDEX_FILE));
      for (const shard of [...new Set(Object.values(weightMap))].sort()) {
        await this.fetchFile(shard, { required: true });
      }
    } else if (!(await this.fetchFile(WEIGHTS_FILE, { required: false }))) {
      throw new LoraforgeError(
        `${this.repoId}: no ${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE} at revision ${this.revision}`,
        'only safetensors weights are supported',
      );
    }
  }

  /** Downloads one file into the snapshot; false when an optional file does not exist. */
  private async fetchFile(file: string, { required }: { required: boolean }): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.fetchFileOnce(file, required);
      } catch (err) {
        if (!(err instanceof TransientError)) throw err;
        if (attempt === MAX_ATTEMPTS) {
          throw new LoraforgeError(
            `${this.repoId}: downloading ${file} failed after ${MAX_ATTEMPTS} attempts (${err.message})`,
            'run the command again to resume the download',
          );
        }
        await sleep(RETRY_DELAY_MS * attempt);
      }
    }
  }

  private async fetchFileOnce(file: string, required: boolean): Promise<boolean> {
    const remote = await this.lookUp(file, required);
    if (!remote) return false;
    this.commit ??= remote.commit ?? this.revision;
    const snapshotPath = join(this.snapshotDir(), file);
    if (existsSync(snapshotPath)) return true;

    const blobPath = remote.etag ? join(this.repoDir, 'blobs', remote.etag) : snapshotPath;
    if (!existsSync(blobPath)) {
      mkdirSync(dirname(blobPath), { recursive: true });
      await this.transfer(file, remote, `${blobPath}.incomplete`);
      renameSync(`${blobPath}.incomplete`, blobPath);
    }
    if (blobPath !== snapshotPath) linkIntoSnapshot(blobPath, snapshotPath);
    return true;
  }

  private fileUrl(file: string): string {
    // Once the commit is known, asking for it (not the branch) keeps all files consistent.
    const revision = encodeURIComponent(this.commit ?? this.revision);
    return `${this.endpoint}/${this.repoId}/resolve/${revision}/${file}`;
  }

  private async request(url: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    // Byte counts and Range offsets refer to the stored bytes, so ask for them uncompressed.
    headers.set('accept-encoding', 'identity');
    // The token is for the hub only, never for the CDN it redirects to.
    if (this.token && new URL(url).origin === new URL(this.endpoint).origin) {
      headers.set('authorization', `Bearer ${this.token}`);
    }
    try {
      return await this.fetchImpl(url, { ...init, headers });
    } catch (err) {
      // undici reports "fetch failed" and keeps the useful part (ECONNREFUSED, ...) in `cause`.
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      const reason = `${(err as Error).message}${cause ? ` (${cause})` : ''}`;
      throw new TransientError(`${new URL(url).host}: ${reason}`);
    }
  }

  /**
   * HEAD request for a file's commit, etag and size. Relative redirects (renamed repos) are
   * followed; an absolute one points at the CDN and carries the metadata itself.
   */
  private async lookUp(file: string, required: boolean): Promise<RemoteFile | undefined> {
    let url = this.fileUrl(file);
    for (let hop = 0; hop < MAX_REDIRECTS; hop++) {
      const res = await this.request(url, {
        method: 'HEAD',
        redirect: 'manual',
        signal: AbortSignal.timeout(IDLE_TIMEOUT_MS),
      });
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        if (location.startsWith('/')) {
          url = new URL(location, url).href;
          continue;
        }
        return this.remoteFile(res, location);
      }
      if (res.ok) return this.remoteFile(res, url);
      return this.failedLookUp(res, file, required);
    }
    throw new LoraforgeError(`${this.repoId}: too many redirects for ${file}`);
  }

  private remoteFile(res: Response, downloadUrl: string): RemoteFile {
    const h = res.headers;
    return {
      downloadUrl,
      commit: normalizeEtag(h.get('x-repo-commit')),
      etag: normalizeEtag(h.get('x-linked-etag') ?? h.get('etag')),
      size: sizeHeader(h.get('x-linked-size') ?? h.get('content-length')),
    };
  }

  private failedLookUp(res: Response, file: string, required: boolean): undefined {
    const code = res.headers.get('x-error-code');
    const page = `${this.endpoint}/${this.repoId}`;
    if (code === 'GatedRepo') {
      throw new LoraforgeError(
        `${this.repoId} is gated (HTTP ${res.status})`,
        `accept its terms at ${page}, then set HF_TOKEN to a token of that account`,
      );
    }
    if (code === 'RepoNotFound' || (res.status === 404 && file === CONFIG_FILE && !code)) {
      throw new LoraforgeError(
        `no such model '${this.repoId}' on ${this.endpoint} (HTTP ${res.status})`,
        'check the id (e.g. Qwen/Qwen2.5-0.5B-Instruct); private models also need HF_TOKEN',
      );
    }
    if (code === 'RevisionNotFound') {
      throw new LoraforgeError(`${this.repoId} has no revision '${this.revision}'`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new LoraforgeError(
        `access to ${this.repoId} denied (HTTP ${res.status})`,
        `the model is gated or private: set HF_TOKEN to a token with access (see ${page})`,
      );
    }
    if (res.status === 404) {
      if (!required) return undefined;
      throw new LoraforgeError(`${this.repoId}: ${file} not found at revision ${this.revision}`);
    }
    if (isTransientStatus(res.status)) {
      throw new TransientError(`HTTP ${res.status} for ${file}`);
    }
    throw new LoraforgeError(`${this.repoId}: HTTP ${res.status} for ${file}`);
  }

  /** Streams the file into `partial`, continuing from what an earlier attempt left there. */
  private async transfer(file: string, remote: RemoteFile, partial: string): Promise<void> {
    let have = existsSync(partial) ? statSync(partial).size : 0;
    if (remote.size !== undefined && have > remote.size) {
      rmSync(partial);
      have = 0;
    }
    if (remote.size !== undefined && have === remote.size) return;

    // Aborts a connection that stops delivering bytes, so a stalled CDN cannot hang us forever.
    const watchdog = new AbortController();
    const idleTimer = setTimeout(() => watchdog.abort(new Error('no data')), IDLE_TIMEOUT_MS);
    try {
      const res = await this.request(remote.downloadUrl, {
        headers: have > 0 ? { range: `bytes=${have}-` } : {},
        redirect: 'follow',
        signal: watchdog.signal,
      });
      const resumed = res.status === 206;
      if (!resumed && res.status !== 200) {
        // 416: what we hold does not fit the remote file any more; start over next attempt.
        if (res.status === 416) rmSync(partial, { force: true });
        const message = `HTTP ${res.status} downloading ${file}`;
        if (res.status === 416 || isTransientStatus(res.status)) throw new TransientError(message);
        throw new LoraforgeError(`${this.repoId}: ${message}`);
      }
      if (resumed && contentRangeStart(res.headers.get('content-range')) !== have) {
        rmSync(partial, { force: true });
        throw new TransientError(`server resumed ${file} at the wrong offset`);
      }
      // A 200 answer to a Range request is the whole file again: start the partial file over.
      let received = resumed ? have : 0;
      const length = sizeHeader(res.headers.get('content-length'));
      const total = remote.size ?? (length === undefined ? undefined : received + length);
      const reader = res.body?.getReader();
      const handle = await open(partial, resumed ? 'a' : 'w');
      try {
        while (reader) {
          const chunk = await reader.read().catch((err: Error) => {
            throw new TransientError(
              `connection lost after ${received} bytes of ${file}: ${err.message}`,
            );
          });
          if (chunk.done) break;
          idleTimer.refresh();
          await handle.write(chunk.value);
          received += chunk.value.byteLength;
          this.opts.onProgress?.({ file, received, total });
        }
      } finally {
        await handle.close();
      }
      if (total !== undefined && received !== total) {
        throw new TransientError(`${file} ended after ${received} of ${total} bytes`);
      }
    } finally {
      clearTimeout(idleTimer);
    }
  }
}

function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

function contentRangeStart(value: string | null): number | undefined {
  const start = value && /^bytes (\d+)-/.exec(value)?.[1];
  return start ? Number(start) : undefined;
}

/** Points the snapshot entry at its blob (a copy-free rename where symlinks are not allowed). */
function linkIntoSnapshot(blobPath: string, snapshotPath: string): void {
  mkdirSync(dirname(snapshotPath), { recursive: true });
  rmSync(snapshotPath, { force: true }); // a dangling link left by a deleted blob
  try {
    symlinkSync(relative(dirname(snapshotPath), blobPath), snapshotPath);
  } catch {
    renameSync(blobPath, snapshotPath);
  }
}
