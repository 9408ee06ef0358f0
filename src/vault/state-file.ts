import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './fs-durable.js';

/**
 * Small JSON state files kept in the vault folder beside the snapshots (verify results, alert
 * state). They start with ".permafrost-" so replication can ignore them: they describe this host,
 * and snapshot folders stay exactly what the backup wrote.
 */
export async function readJsonState<T>(file: string, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    // A state file is a cache of past outcomes: a corrupt one is replaced, not fatal.
    return fallback;
  }
}

/** Replaces a state file atomically (temp name, fsync, rename). */
export async function writeJsonState(file: string, data: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(data, null, 2)}\n`, 0o640);
}
