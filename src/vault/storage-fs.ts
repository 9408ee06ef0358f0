import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { IntegrityError, PermafrostError } from '../errors.js';
import { openVault, VAULT_NAMES } from './layout.js';
import { MANIFEST_NAME } from './manifest.js';
import type { SnapshotReader, StorageListing, StoredFile, StoredSnapshot } from './storage.js';
import { SNAPSHOT_ID_RE } from './store.js';

/** A snapshot file name as permafrost writes them: no slash, no leading dot (the same rule as a bucket's listing). */
const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * A vault folder as a place to read snapshots from (vault/storage.ts), for the operations that copy
 * a vault elsewhere (ops/offsite.ts push). Only regular files at the names a vault holds are listed
 * or opened (never a symlink, a FIFO or a device file: opened with O_NOFOLLOW | O_NONBLOCK and
 * checked), so a tampered folder cannot make a push read outside it or hang.
 */
export function folderStorage(vaultDir: string): SnapshotReader {
  const vault = openVault(vaultDir);
  const pathOf = (id: string | undefined, name: string): string => {
    if (!FILE_NAME_RE.test(name) || (id !== undefined && !SNAPSHOT_ID_RE.test(id)))
      throw new PermafrostError('internal', `not a vault file name: ${id ?? ''}/${name}`);
    return id === undefined ? vault.runbookFile(name as (typeof VAULT_NAMES.runbook)[number]) : vault.snapshotFile(id, name);
  };

  async function regularFiles(dir: string, names: readonly string[]): Promise<StoredFile[]> {
    const files: StoredFile[] = [];
    for (const name of names) {
      if (!FILE_NAME_RE.test(name)) continue;
      const st = await lstat(`${dir}/${name}`).catch(() => null);
      if (st?.isFile()) files.push({ name, bytes: st.size });
    }
    return files;
  }

  /** Opens a regular file without following links or blocking; its handle's stream. */
  async function openRegular(id: string | undefined, name: string): Promise<{ stream: Readable; bytes: number }> {
    const file = pathOf(id, name);
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

  return {
    describe: vaultDir,

    async list() {
      let names: string[];
      try {
        names = await readdir(vaultDir);
      } catch (err) {
        throw new PermafrostError('io', `vault.dir ${vaultDir} cannot be read; check it exists and is readable.`, { cause: err });
      }
      const snapshots: StoredSnapshot[] = [];
      for (const id of names.filter((n) => SNAPSHOT_ID_RE.test(n))) {
        const st = await lstat(vault.snapshotDir(id)).catch(() => null);
        if (!st?.isDirectory()) continue;
        const files = await regularFiles(vault.snapshotDir(id), await readdir(vault.snapshotDir(id)).catch(() => []));
        snapshots.push({ id, files, complete: files.some((f) => f.name === MANIFEST_NAME) });
      }
      snapshots.sort((a, b) => b.id.localeCompare(a.id));
      const rootFiles = await regularFiles(
        vaultDir,
        VAULT_NAMES.runbook.filter((n) => names.includes(n)),
      );
      return { snapshots, rootFiles, foreign: [] } satisfies StorageListing;
    },

    async read(id, name) {
      return (await openRegular(id, name)).stream;
    },

    async readSmall(id, name, maxBytes) {
      const { stream, bytes } = await openRegular(id, name);
      if (bytes > maxBytes) {
        stream.destroy();
        throw new IntegrityError(`${pathOf(id, name)} is larger than ${maxBytes} bytes, more than any ${name} permafrost writes.`);
      }
      return Buffer.concat(await stream.toArray());
    },
  };
}
