import { constants } from 'node:fs';
import { open, rename, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { VAULT_NAMES } from './layout.js';

/** fsyncs a directory so that renames and new entries in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsyncs a file that was written by a stream. */
export async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * How temporary names of atomic writes begin: in the vault, Syncthing ignores `/.permafrost*`, so
 * a file being written there (RESTORE.md, a state file) is never replicated half-done.
 */
export const ATOMIC_TEMP_PREFIX = VAULT_NAMES.atomicTempPrefix;

/** Writes a file under a temporary name in the same folder, fsyncs it, then renames it into place. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o640): Promise<void> {
  const tmp = path.join(path.dirname(file), `${ATOMIC_TEMP_PREFIX}${path.basename(file)}-${process.pid}`);
  try {
    const handle = await open(tmp, 'w', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    // A failed write leaves nothing half-done behind.
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/** Creates `file` with `mode` and writes it, synced with its folder; fails (EEXIST) if it exists: never replaces a secret. */
export async function createExclusive(file: string, text: string, mode: number): Promise<void> {
  const handle = await open(file, 'wx', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsyncDir(path.dirname(file));
}

/** Free bytes (for this user) and total bytes of the filesystem holding `dir`. */
export async function diskSpace(dir: string): Promise<{ free: number; total: number }> {
  const s = await statfs(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}
