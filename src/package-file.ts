import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A file shipped in the package (package.json, scripts/restore.sh), by its path from the package's
 * root: the nearest folder above this module holding package.json. The same from src/ (tests), from
 * tsc's dist/ and from the bundle's chunks (dist/bin/chunks/), which sit at different depths.
 */
export function packageFile(relative: string): string {
  return packageFileFrom(path.dirname(fileURLToPath(import.meta.url)), relative);
}

/** `relative` from the nearest folder at or above `start` that holds package.json. */
export function packageFileFrom(start: string, relative: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return path.join(dir, relative);
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${start}: the permafrost package is incomplete`);
  }
}
