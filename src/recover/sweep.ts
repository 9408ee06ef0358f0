/**
 * What dead runs left behind, removed by the next run (backup, verify, restore, prune) and by
 * `doctor`: private temp folders holding plaintext, and scratch databases (full copies of
 * production) of a verify that was killed (SIGKILL, OOM) before it could clean up, and the gpg
 * homes older versions left in $TMPDIR. Only what names a creator that no longer runs (or, for
 * those gpg homes, what no process uses) is touched; anything of a live run is left alone.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import type { NotifyLog } from '../notify/alerts.js';
import { identityAlive } from '../vault/lock.js';
import { connect } from '../tools/postgres.js';
import { TEMP_PREFIX } from './decrypt.js';
import { SCRATCH_COMMENT, scratchCreator, verifyServer } from './verify.js';
import type { JobSecrets } from '../config/secret-values.js';

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

/** The throwaway GNUPGHOMEs older permafrost versions made straight in $TMPDIR: their names tell no creator. */
const LEGACY_GNUPG_NAME = /^permafrost-gnupg-[A-Za-z0-9]{6}$/;
/** A legacy GNUPGHOME this recent may belong to a run that has made it and not yet started gpg. */
const LEGACY_QUIET_MS = 10 * 60_000;

/** The command lines of every process on this host (gpg and gpg-agent name their home: `--homedir DIR`). */
async function commandLines(): Promise<string[]> {
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((n) => /^\d+$/.test(n));
  const lines = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  return lines.filter(Boolean);
}

/**
 * Removes, under `dirs`, the GNUPGHOMEs older permafrost versions left in $TMPDIR when killed
 * (`permafrost-gnupg-XXXXXX`): only one no process names in its command line and untouched for
 * ten minutes, so a live run's home (gpg running in it, or just made) is never removed.
 */
async function sweepLegacyGnupgHomes(dirs: readonly string[]): Promise<string[]> {
  const swept: string[] = [];
  let running: string[] | null = null;
  for (const dir of dirs) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!LEGACY_GNUPG_NAME.test(name)) continue;
      const home = path.join(dir, name);
      const info = await stat(home).catch(() => null);
      if (!info?.isDirectory() || Date.now() - info.mtimeMs < LEGACY_QUIET_MS) continue;
      running ??= await commandLines();
      if (running.some((argv) => argv.split('\0').includes(home))) continue;
      await rm(home, { recursive: true, force: true });
      swept.push(home);
    }
  }
  return swept;
}

/** Drops the marked scratch databases on the verify server whose creator (on this host) is dead; their names. */
async function sweepScratchDatabases(config: Config, secrets: JobSecrets): Promise<string[]> {
  const server = verifyServer(config, 'postgres', secrets);
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
export async function sweepLeftovers(config: Config, secrets: JobSecrets): Promise<{ swept: string[]; problems: string[] }> {
  const swept: string[] = [];
  const problems: string[] = [];
  try {
    for (const dir of await sweepTempFolders(config.vault.tempDir)) swept.push(`removed temp folder ${dir} left by a run that died`);
  } catch (err) {
    problems.push(`could not sweep temp folders of dead runs in ${config.vault.tempDir ?? tmpdir()}: ${errorMessage(err)}`);
  }
  try {
    const dirs = [...new Set([tmpdir(), config.vault.tempDir ?? tmpdir()])];
    for (const home of await sweepLegacyGnupgHomes(dirs)) swept.push(`removed gpg home ${home} left by a run that died`);
  } catch (err) {
    problems.push(`could not sweep gpg homes of dead runs: ${errorMessage(err)}`);
  }
  if (hasVerifyServer(config)) {
    try {
      for (const db of await sweepScratchDatabases(config, secrets))
        swept.push(`dropped scratch database "${db}" left by a verify that died`);
    } catch (err) {
      // A server that cannot be reached is the run's own error, said once by the run itself.
      if (!(err instanceof PermafrostError && err.kind === 'connection'))
        problems.push(`could not sweep scratch databases of dead verify runs: ${errorMessage(err)}`);
    }
  }
  return { swept, problems };
}

/** Sweeps (see sweepLeftovers) and reports each thing removed, and any trouble, as a warning on `log`. */
export async function sweepAndReport(config: Config, log: NotifyLog, secrets: JobSecrets): Promise<void> {
  const { swept, problems } = await sweepLeftovers(config, secrets);
  for (const line of [...swept, ...problems]) log('warn', line, { event: 'sweep' });
}
