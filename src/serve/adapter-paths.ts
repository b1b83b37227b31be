/**
 * Confines runtime adapter loading to one folder: a client-supplied `lora_path` must name a
 * directory inside it after symlinks are resolved, so the API cannot be used to probe or load
 * arbitrary files on the host.
 */
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { badRequest } from './api-error.ts';

/** Returns the real path of the adapter folder `requested` names inside `root` (a real path). */
export async function resolveAdapterDir(root: string, requested: string): Promise<string> {
  const param = 'lora_path';
  if (requested === '' || requested.includes('\0'))
    throw badRequest("'lora_path' is not a valid path.", param);
  // '..' is refused outright, even where it would stay inside: no legitimate client needs it.
  if (requested.split(/[\\/]/).includes('..'))
    throw badRequest("'lora_path' may not contain '..'.", param);
  const lexical = resolve(root, requested);
  if (!isInside(root, lexical))
    throw badRequest("'lora_path' must lie inside the adapters folder.", param);

  let real: string;
  try {
    real = await realpath(lexical);
  } catch {
    throw badRequest(`No adapter folder at '${requested}'.`, param);
  }
  if (!isInside(root, real))
    throw badRequest("'lora_path' must lie inside the adapters folder.", param);
  if (!(await stat(real)).isDirectory()) throw badRequest(`'${requested}' is not a folder.`, param);
  return real;
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`);
}
