import { availableParallelism } from 'node:os';
import type pg from 'pg';
import { connect, defaultRestoreJobs, pgEnv, pgRestoreArgv, pgRestoreEnv, userTableCount } from '../tools/postgres.js';
import { runTool } from '../tools/run.js';
import type { DatabaseConfig } from '../config/schema.js';
import { PermafrostError, UserError } from '../errors.js';
import type { ManifestFile } from '../vault/manifest.js';
import type { JobEvents } from '../jobs/events.js';
import { decryptVerifiedPart, type DecryptSource } from './decrypt.js';

/** What a restore stopped or failed inside pg_restore says about its target. */
export const PARTLY_RESTORED = 'the database may be partly restored';

/** The restore target as found before anything is touched. */
export interface TargetState {
  exists: boolean;
  tables: number;
}

export interface DatabaseRestoreResult {
  snapshot: string;
  database: string;
  created: boolean;
  decryptMs: number;
  restoreMs: number;
  totalMs: number;
  bytes: number;
}

/** Whether the target exists and how many user tables it holds, read without changing it. */
export async function inspectTarget(server: DatabaseConfig, name: string): Promise<TargetState> {
  let client: pg.Client;
  try {
    client = await connect(server, name);
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

/** Refuses a target that holds tables unless --force was given; nothing has been touched yet. */
export function checkTarget(target: TargetState, name: string, force: boolean | undefined): void {
  if (target.tables > 0 && !force) {
    throw new UserError(
      `Database "${name}" is not empty (${target.tables} tables); restore into a new database, or pass --force to replace its contents.`,
    );
  }
}

async function createDatabase(server: DatabaseConfig, name: string): Promise<void> {
  const client = await connect(server, 'postgres');
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Restores the snapshot's database part into `opts.database` on `opts.server`: the whole part is
 * decrypted and verified in the temp folder before the target is touched (the caller has checked
 * the target with inspectTarget/checkTarget, and disposes the temp folder).
 */
export async function restoreDatabase(
  source: DecryptSource,
  file: ManifestFile,
  opts: { server: DatabaseConfig; database: string; target: TargetState; jobs?: number; noOwner?: boolean; events?: JobEvents; signal?: AbortSignal },
): Promise<DatabaseRestoreResult> {
  const t0 = Date.now();
  const { snapshot } = source;
  const { server } = opts;
  opts.events?.phase?.('decrypt');
  const archive = await decryptVerifiedPart(source, file, {
    progress: (n) => opts.events?.bytes?.('decrypt', n),
    signal: opts.signal,
  });
  const decryptMs = Date.now() - t0;
  opts.events?.phase?.('restore');
  if (!opts.target.exists) await createDatabase(server, opts.database);
  const jobs = opts.jobs ?? defaultRestoreJobs(availableParallelism());
  const argv = pgRestoreArgv(server, opts.database, archive, { jobs, noOwner: opts.noOwner });
  try {
    await runTool({ argv, env: pgRestoreEnv(pgEnv(server)), doing: `restoring snapshot ${snapshot.id} into "${opts.database}"`, signal: opts.signal });
  } catch (err) {
    if (opts.signal?.aborted) {
      throw new PermafrostError(
        'tool',
        `Restore of snapshot ${snapshot.id} was stopped while pg_restore was writing into "${opts.database}"; ${PARTLY_RESTORED}: run restore again with --force.`,
        { cause: err },
      );
    }
    throw new PermafrostError(
      'tool',
      `pg_restore failed restoring snapshot ${snapshot.id} into "${opts.database}"; ${PARTLY_RESTORED}: read the lines below, fix the cause and run restore again with --force.`,
      { cause: err, details: (err as PermafrostError).details },
    );
  }
  const totalMs = Date.now() - t0;
  return {
    snapshot: snapshot.id,
    database: opts.database,
    created: !opts.target.exists,
    decryptMs,
    restoreMs: totalMs - decryptMs,
    totalMs,
    bytes: file.plainBytes,
  };
}
