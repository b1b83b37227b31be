/** Paths of the files that ship with the package: the tiny chat model and the identity data. */
import { fileURLToPath } from 'node:url';

export function shipped(path: string): string {
  return fileURLToPath(new URL(path, import.meta.resolve('loraforge/package.json')));
}
