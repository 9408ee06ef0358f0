/**
 * What dead runs left behind, removed by the next run (backup, verify, restore, prune) and by
 * `doctor`: private temp folders holding plaintext, and scratch databases (full copies of
 * production) of a verify that was killed (SIGKILL, OOM) before it could clean up. Only what
 * names a creator that no longer runs is touched; anything of a live run is left alone.
 */
import { readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import type { NotifyLog } from '../notify/alerts.js';
import { identityAlive } from '../schedule/lock.js';
import { connect } from '../tools/postgres.js';
import { TEMP_PREFIX } from './decrypt.js';
import { SCRATCH_COMMENT, scratchCreator, verifyServer } from './verify.js';

const TEMP_NAME = new RegExp(`^${TEMP_PREFIX}(\\d+)-(\\d+)-[A-Za-z0-9]{6}$`);

/** Removes the private temp folders under `base` (default $TMPDIR) whose creator is dead; their paths. */
async function sweepTempFolders(base: string | undefined): Promise<string[]> {
  const dir = base ?? tmpdir();
  const names = await readdir(dir).catch(() => [] as string[]);
  const swept: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const start = m[2] === '0' ? null : m[2]!;
    if (identityAlive({ pid: Number(m[1]), boot: null, start })) continue;
    await rm(path.join(dir, name), { recursive: true, force: true });
    swept.push(path.join(dir, name));
  }
  return swept;
}

/** Drops the marked scratch databases on the verify server whose creator (on this host) is dead; their names. */
async function sweepScratchDatabases(config: Config): Promise<string[]> {
  const server = verifyServer(config, 'postgres');
  const admin = await connect(server, 'postgres');
  try {
    const rows = await admin.query<{ datname: string; comment: string | null }>(
      `SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database
        WHERE shobj_description(oid, 'pg_database') LIKE $1`,
      [`${SCRATCH_COMMENT}%`],
    );
    const swept: string[] = [];
    for (const row of rows.rows) {
      const creator = scratchCreator(row.comment);
      if (!creator || identityAlive(creator)) continue;
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(row.datname)} WITH (FORCE)`);
      swept.push(row.datname);
    }
    return swept;
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Whether this config names a PostgreSQL server verify would use (a backup device may have none). */
function hasVerifyServer(config: Config): boolean {
  return config.role === 'source' || Boolean(config.verify?.connection);
}

/**
 * Sweeps both kinds of leftovers and returns one sentence per thing removed. Trouble sweeping
 * (the server is down) never fails the run: it is a sentence too, and the run reports its own.
 */
export async function sweepLeftovers(config: Config): Promise<{ swept: string[]; problems: string[] }> {
  const swept: string[] = [];
  const problems: string[] = [];
  try {
    for (const dir of await sweepTempFolders(config.vault.tempDir)) swept.push(`removed temp folder ${dir} left by a run that died`);
  } catch (err) {
    problems.push(`could not sweep temp folders of dead runs in ${config.vault.tempDir ?? tmpdir()}: ${errorMessage(err)}`);
  }
  if (hasVerifyServer(config)) {
    try {
      for (const db of await sweepScratchDatabases(config)) swept.push(`dropped scratch database "${db}" left by a verify that died`);
    } catch (err) {
      // A server that cannot be reached is the run's own error, said once by the run itself.
      if (!(err instanceof PermafrostError && err.kind === 'connection'))
        problems.push(`could not sweep scratch databases of dead verify runs: ${errorMessage(err)}`);
    }
  }
  return { swept, problems };
}

/** Sweeps (see sweepLeftovers) and reports each thing removed, and any trouble, as a warning on `log`. */
export async function sweepAndReport(config: Config, log: NotifyLog): Promise<void> {
  const { swept, problems } = await sweepLeftovers(config);
  for (const line of [...swept, ...problems]) log('warn', line, { event: 'sweep' });
}
