import type pg from 'pg';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { userTableCount, assertDbName } from '../capture/postgres.js';
import { connect, defaultRestoreJobs, pgEnv, pgRestoreArgv, pgRestoreEnv } from '../tools/postgres.js';
import { runTool } from '../tools/run.js';
import { readSecretFile } from '../config/secret-file.js';
import type { Config } from '../config/schema.js';
import { PermafrostError, UserError } from '../errors.js';
import { decryptVerifiedPart, partFile, privateTemp } from '../recover/decrypt-part.js';
import { watchGrowth } from '../recover/file-progress.js';
import { findSnapshot } from '../vault/store.js';

export interface RestoreOptions {
  snapshot?: string;
  database: string;
  force?: boolean;
  jobs?: number;
  noOwner?: boolean;
  events?: { phase?(name: string): void; bytes?(phase: string, n: number): void };
}

export interface RestoreResult {
  snapshot: string;
  database: string;
  created: boolean;
  decryptMs: number;
  restoreMs: number;
  totalMs: number;
  bytes: number;
}

/** Whether the target exists and how many user tables it holds, read without changing it. */
async function inspectTarget(config: Config, name: string): Promise<{ exists: boolean; tables: number }> {
  let client: pg.Client;
  try {
    client = await connect(config.database, name);
  } catch (err) {
    // 3D000: invalid_catalog_name, the database does not exist yet.
    if ((err as { cause?: { code?: string } }).cause?.code === '3D000') return { exists: false, tables: 0 };
    throw err;
  }
  try {
    return { exists: true, tables: await userTableCount(client) };
  } finally {
    await client.end();
  }
}

async function createDatabase(config: Config, name: string): Promise<void> {
  const client = await connect(config.database, 'postgres');
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Restores a snapshot's database: the whole snapshot is decrypted and verified in a private temp
 * file before the target is touched; the temp file is removed on every path.
 */
export async function runRestore(config: Config, opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = Date.now();
  assertDbName(opts.database, '--database');
  const passphrase = readSecretFile(config.vault.passphraseFile, 'vault.passphraseFile');
  const snapshot = await findSnapshot(config.vault.dir, opts.snapshot);
  const file = partFile(snapshot, 'database');
  const target = await inspectTarget(config, opts.database);
  if (target.tables > 0 && !opts.force) {
    throw new UserError(
      `Database "${opts.database}" is not empty (${target.tables} tables); restore into a new database, or pass --force to replace its contents.`,
    );
  }
  const temp = await privateTemp(config.vault.tempDir);
  try {
    opts.events?.phase?.('decrypt');
    // gpg decrypts into the temp folder: the file's growth is the progress.
    const stop = watchGrowth(path.join(temp.dir, file.name.replace(/\.gpg$/, '')), (n) => opts.events?.bytes?.('decrypt', n));
    const archive = await decryptVerifiedPart(snapshot, file, passphrase, temp).finally(stop);
    opts.events?.bytes?.('decrypt', file.plainBytes);
    const decryptMs = Date.now() - t0;
    opts.events?.phase?.('restore');
    if (!target.exists) await createDatabase(config, opts.database);
    const jobs = opts.jobs ?? defaultRestoreJobs(availableParallelism());
    const argv = pgRestoreArgv(config.database, opts.database, archive, { jobs, noOwner: opts.noOwner });
    try {
      await runTool({ argv, env: pgRestoreEnv(pgEnv(config.database)), doing: `restoring snapshot ${snapshot.id} into "${opts.database}"` });
    } catch (err) {
      throw new PermafrostError('tool', `pg_restore failed restoring snapshot ${snapshot.id} into "${opts.database}"; the database may be partly restored: read the lines below, fix the cause and run restore again with --force.`, {
        cause: err,
        details: (err as PermafrostError).details,
      });
    }
    const totalMs = Date.now() - t0;
    return {
      snapshot: snapshot.id,
      database: opts.database,
      created: !target.exists,
      decryptMs,
      restoreMs: totalMs - decryptMs,
      totalMs,
      bytes: file.plainBytes,
    };
  } finally {
    await temp.dispose();
  }
}
