/**
 * Where the page reads a model folder's files from: a URL (the shipped model, served next to the
 * page) or the files of a folder the user picked (<input type=file webkitdirectory>).
 */
import { LoraforgeError } from '../util/errors.ts';

/** A model folder as named byte sources. */
export interface ModelFiles {
  /** Names the folder in messages; ends with '/', so `label + name` names a file. */
  readonly label: string;
  /** The file's bytes, or undefined when the folder has no such file. */
  read(name: string): Promise<ArrayBuffer | undefined>;
}

/** The model folder at a URL (fetched on demand). */
export function filesAtUrl(base: string): ModelFiles {
  const folder = base.endsWith('/') ? base : `${base}/`;
  return {
    label: folder,
    async read(name) {
      const response = await fetch(folder + name);
      if (response.status === 404) return undefined;
      if (!response.ok) throw new LoraforgeError(`${folder}${name}: HTTP ${response.status}`);
      return response.arrayBuffer();
    },
  };
}

/** Files of a picked folder, by base name (webkitRelativePath starts with the folder's name). */
export function pickedFiles(files: FileList): ModelFiles {
  const byName = new Map<string, File>();
  for (const file of Array.from(files)) {
    // Only the folder's own files: a nested folder may hold another model's config.json.
    if (file.webkitRelativePath.split('/').length <= 2) byName.set(file.name, file);
  }
  const folder = files[0]?.webkitRelativePath.split('/')[0] ?? 'picked folder';
  return {
    label: `${folder}/`,
    read: async (name) => byName.get(name)?.arrayBuffer(),
  };
}

/** A JSON file that must hold an object, or undefined when the folder has no such file. */
export async function readJsonObject(
  files: ModelFiles,
  name: string,
): Promise<Record<string, unknown> | undefined> {
  const bytes = await files.read(name);
  if (!bytes) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new LoraforgeError(`${files.label}${name}: invalid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LoraforgeError(`${files.label}${name}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}
