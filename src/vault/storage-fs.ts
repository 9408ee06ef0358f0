import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { errorMessage, IntegrityError, PermafrostError } from '../errors.js';
import { VAULT_NAMES, type Vault } from './layout.js';
import { MANIFEST_NAME } from './manifest.js';
import type { OtherEntry, SnapshotReader, StorageListing, StoredFile, StoredSnapshot } from './storage.js';
import { SNAPSHOT_ID_RE } from './store.js';

/** A snapshot file name as permafrost writes them: no slash, no leading dot (the same rule as a bucket's listing). */
const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The path of a file a vault holds, refusing any other name (a listing is hostile input). */
function pathOf(vault: Vault, id: string | undefined, name: string): string {
  if (!FILE_NAME_RE.test(name) || (id !== undefined && !SNAPSHOT_ID_RE.test(id)))
    throw new PermafrostError('internal', `not a vault file name: ${id ?? ''}/${name}`);
  return id === undefined ? vault.runbookFile(name as (typeof VAULT_NAMES.runbook)[number]) : vault.snapshotFile(id, name);
}

/** The regular files at names a vault holds, and every other entry (for check to name); an entry gone meanwhile is skipped. */
async function entries(dir: string, names: readonly string[]): Promise<{ files: StoredFile[]; others: OtherEntry[] }> {
  const files: StoredFile[] = [];
  const others: OtherEntry[] = [];
  for (const name of names) {
    const st = await lstat(`${dir}/${name}`).catch(() => null);
    if (!st) continue;
    if (st.isFile() && FILE_NAME_RE.test(name)) files.push({ name, bytes: st.size });
    else others.push({ name, regular: st.isFile(), bytes: st.size });
  }
  return { files, others };
}

/** One snapshot folder's listing: its files, the other entries, or why it cannot be read; null when it went away meanwhile. */
async function snapshotListing(vault: Vault, id: string): Promise<StoredSnapshot | null> {
  const dir = vault.snapshotDir(id);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    return { id, files: [], complete: false, unreadable: `${dir} cannot be read (${code ?? errorMessage(err)})` };
  }
  const { files, others } = await entries(dir, names);
  return { id, files, complete: files.some((f) => f.name === MANIFEST_NAME), ...(others.length > 0 ? { others } : {}) };
}

/** Opens a regular file without following links or blocking; its handle's stream. */
async function openRegular(vault: Vault, id: string | undefined, name: string): Promise<{ stream: Readable; bytes: number }> {
  const file = pathOf(vault, id, name);
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new PermafrostError('io', `${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}).`, { cause: err });
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new IntegrityError(`${file} is not a regular file; permafrost never reads anything else in a vault.`);
  }
  return { stream: handle.createReadStream({ highWaterMark: 1 << 20 }), bytes: st.size };
}

/** Every snapshot folder (newest first) and the runbook files at the root. */
async function listFolder(vault: Vault): Promise<StorageListing> {
  let names: string[];
  try {
    names = await readdir(vault.dir);
  } catch (err) {
    throw new PermafrostError('io', `vault.dir ${vault.dir} cannot be read; check it exists and is readable.`, { cause: err });
  }
  const snapshots: StoredSnapshot[] = [];
  for (const id of names.filter((n) => SNAPSHOT_ID_RE.test(n))) {
    const st = await lstat(vault.snapshotDir(id)).catch(() => null);
    if (!st?.isDirectory()) continue;
    const listed = await snapshotListing(vault, id);
    if (listed) snapshots.push(listed);
  }
  snapshots.sort((a, b) => b.id.localeCompare(a.id));
  const rootFiles = (
    await entries(
      vault.dir,
      VAULT_NAMES.runbook.filter((n) => names.includes(n)),
    )
  ).files;
  return { snapshots, rootFiles, foreign: [] };
}

/**
 * A vault folder as a place to read snapshots from (vault/storage.ts): what push copies elsewhere
 * (ops/offsite.ts) and what check reads (ops/check.ts). Only regular files at the names a vault holds are listed
 * or opened (never a symlink, a FIFO or a device file: opened with O_NOFOLLOW | O_NONBLOCK and
 * checked), so a tampered folder cannot make a push read outside it or hang.
 */
export function folderStorage(vault: Vault): SnapshotReader {
  return {
    describe: vault.dir,
    list: () => listFolder(vault),
    async read(id, name) {
      return (await openRegular(vault, id, name)).stream;
    },
    async readSmall(id, name, maxBytes) {
      const { stream, bytes } = await openRegular(vault, id, name);
      if (bytes > maxBytes) {
        stream.destroy();
        throw new IntegrityError(`${pathOf(vault, id, name)} is larger than ${maxBytes} bytes, more than any ${name} permafrost writes.`);
      }
      return Buffer.concat(await stream.toArray());
    },
  };
}
