import { open } from 'node:fs/promises';
import { availableParallelism, hostname } from 'node:os';
import type pg from 'pg';
import { databaseSchema, type Config, type DatabaseConfig } from '../config/schema.js';
import { ToolError, UserError } from '../errors.js';
import {
  connect,
  defaultRestoreJobs,
  pgEnv,
  pgRestoreEnv,
  pgRestoreListArgv,
  verifyRestoreArgv,
  mastodonFacts,
} from '../tools/postgres.js';
import { runTool } from '../tools/run.js';
import type { MastodonFacts } from '../vault/manifest.js';
import { selfIdentity, type ProcessIdentity } from '../schedule/lock.js';

/** One table of contents entry of a custom-format archive that creates a table. */
export interface TocTable {
  schema: string;
  name: string;
}

/**
 * The tables a `pg_restore --list` output creates. Lines look like
 * `215; 1259 16386 TABLE public accounts postgres`; comments start with ';'.
 */
export function parseTocTables(list: string): TocTable[] {
  const tables: TocTable[] = [];
  for (const line of list.split('\n')) {
    const m = /^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+) /.exec(line);
    if (m) tables.push({ schema: m[1]!, name: m[2]! });
  }
  return tables;
}

/** Reads an archive's table of contents with pg_restore --list. */
export async function archiveTables(db: Pick<DatabaseConfig, 'binDir'>, archive: string): Promise<TocTable[]> {
  const argv = pgRestoreListArgv(db, archive);
  try {
    const { stdout } = await runTool({ argv, doing: "reading the archive's table of contents" }, { maxBuffer: 256 * 1024 * 1024 });
    return parseTocTables(stdout);
  } catch (err) {
    const e = err as ToolError;
    throw new ToolError("pg_restore cannot read the archive's table of contents; the archive is not a valid pg_dump custom-format file.", {
      argv,
      exitStatus: e.exitStatus,
      signal: e.signal,
      stderr: e.stderrTail || e.message,
      cause: err,
    });
  }
}

/**
 * The server the test-restore runs on: verify.connection over database, with the scratch name.
 * A backup device without a database section names its server in verify.connection, or else
 * (as with no config file, `--vault`) uses the one libpq's environment names (PGHOST, PGPORT, …).
 */
export function verifyServer(config: Config, scratch: string): DatabaseConfig {
  const c = config.verify?.connection;
  const base: DatabaseConfig | undefined = config.role === 'source' ? config.database : undefined;
  if (!c) {
    return base ? { ...base, name: scratch } : databaseSchema.parse({ name: scratch });
  }
  return {
    compression: base?.compression ?? 1,
    host: c.host,
    port: c.port,
    user: c.user,
    passwordFile: c.passwordFile,
    binDir: c.binDir ?? base?.binDir,
    name: scratch,
  };
}

/** The scratch database's name: verify.database, else one per process. */
export function scratchName(config: Config, pid = process.pid): string {
  return config.verify?.database ?? `permafrost_verify_${pid}`;
}

/**
 * Marks databases permafrost created for a test-restore, so a leftover of a killed run may be
 * replaced or swept. The mark names the creator (host, PID, boot id, start time): a sweep drops
 * only marked databases whose creator no longer runs.
 */
export const SCRATCH_COMMENT = 'permafrost verify scratch database; safe to drop';

/** The scratch mark for a database this process creates. */
function scratchMark(): string {
  const me = selfIdentity();
  return `${SCRATCH_COMMENT}; host ${hostname()}; pid ${me.pid}; boot ${me.boot ?? '-'}; start ${me.start ?? '-'}`;
}

/** The creator a scratch mark names on this host; null for another host's or an unmarked database. */
export function scratchCreator(comment: string | null): ProcessIdentity | null {
  if (!comment?.startsWith(SCRATCH_COMMENT)) return null;
  const field = (key: string): string | null => {
    const v = comment
      .split('; ')
      .find((f) => f.startsWith(`${key} `))
      ?.slice(key.length + 1);
    return v === undefined || v === '-' ? null : v;
  };
  const pid = Number(field('pid'));
  if (field('host') !== hostname() || !Number.isInteger(pid) || pid <= 0) return null;
  return { pid, boot: field('boot'), start: field('start') };
}

/**
 * Creates the scratch database. An existing database of that name is replaced only when it carries
 * permafrost's scratch mark (left by a killed run); any other is refused, never dropped.
 */
export async function createScratch(server: DatabaseConfig): Promise<void> {
  const admin = await connect(server, 'postgres');
  try {
    const existing = await admin.query<{ comment: string | null }>(
      `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
      [server.name],
    );
    const row = existing.rows[0];
    if (row) {
      if (!row.comment?.startsWith(SCRATCH_COMMENT)) {
        throw new UserError(
          `verify.database: database "${server.name}" already exists and was not made by permafrost; choose another scratch name (verify never drops a database it did not create).`,
        );
      }
      await admin.query(`DROP DATABASE ${admin.escapeIdentifier(server.name)} WITH (FORCE)`);
    }
    const ident = admin.escapeIdentifier(server.name);
    await admin.query(`CREATE DATABASE ${ident}`);
    await admin.query(`COMMENT ON DATABASE ${ident} IS ${admin.escapeLiteral(scratchMark())}`);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Drops the scratch database, ending any session still in it. */
export async function dropScratch(server: DatabaseConfig): Promise<void> {
  const admin = await connect(server, 'postgres');
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(server.name)} WITH (FORCE)`);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Restores the archive into the scratch database; rejects with pg_restore's own last error line. */
export async function restoreIntoScratch(server: DatabaseConfig, archive: string, jobs?: number, signal?: AbortSignal): Promise<void> {
  // As restore does: parallel jobs and restore-friendly session settings (a scratch database needs no durable commits).
  const argv = verifyRestoreArgv(server, server.name, archive, { jobs: jobs ?? defaultRestoreJobs(availableParallelism()) });
  try {
    await runTool({ argv, env: pgRestoreEnv(pgEnv(server)), doing: 'restoring the archive', signal });
  } catch (err) {
    const e = err as ToolError;
    const why = e.stderrTail.trim().split('\n').filter(Boolean).pop() ?? e.message;
    throw new ToolError(`pg_restore could not restore the archive: ${why.replace(/^pg_restore: (error: )?/, '')}`, {
      argv,
      exitStatus: e.exitStatus,
      signal: e.signal,
      stderr: e.stderrTail,
      cause: err,
    });
  }
}

/** What the restored scratch database holds, for comparison with the manifest. */
export interface RestoredFacts {
  facts: MastodonFacts | null;
  /** `schema.name` of every ordinary or partitioned table present. */
  tables: Set<string>;
}

export async function readRestoredFacts(server: DatabaseConfig): Promise<RestoredFacts> {
  const client: pg.Client = await connect(server, server.name);
  try {
    const r = await client.query<{ t: string }>(
      `SELECT n.nspname || '.' || c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r','p')`,
    );
    return { facts: await mastodonFacts(client), tables: new Set(r.rows.map((x) => x.t)) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface CheckOutcome {
  name: string;
  ok: boolean;
  detail: string;
}

/** Compares the restored database with the manifest's facts and the archive's table of contents. */
export function compareWithManifest(expected: MastodonFacts | null, toc: TocTable[], restored: RestoredFacts): CheckOutcome[] {
  const checks: CheckOutcome[] = [];
  const missing = toc.filter((t) => !restored.tables.has(`${t.schema}.${t.name}`)).map((t) => `${t.schema}.${t.name}`);
  checks.push({
    name: 'tables',
    ok: missing.length === 0,
    detail:
      missing.length === 0
        ? `all ${toc.length} tables of the archive exist after restore`
        : `table${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of the archive ${missing.length > 1 ? 'are' : 'is'} missing after restore`,
  });
  if (expected === null) {
    checks.push({ name: 'row-counts', ok: true, detail: 'the manifest records no Mastodon facts (not a Mastodon database)' });
    return checks;
  }
  const wrong: string[] = [];
  for (const [table, want] of Object.entries(expected.rowCounts)) {
    if (!restored.tables.has(`public.${table}`)) {
      wrong.push(`table ${table} is in the manifest (${want} rows) but not in the archive`);
      continue;
    }
    const got = restored.facts?.rowCounts[table];
    if (got !== want) wrong.push(`${table} has ${got ?? 0} rows, the manifest says ${want}`);
  }
  checks.push({
    name: 'row-counts',
    ok: wrong.length === 0,
    detail:
      wrong.length === 0
        ? `row counts equal the manifest (${Object.entries(expected.rowCounts)
            .map(([t, n]) => `${t} ${n}`)
            .join(', ')})`
        : wrong.join('; '),
  });
  const gotMigration = restored.facts?.schemaMigration ?? null;
  checks.push({
    name: 'schema-migration',
    ok: gotMigration === expected.schemaMigration,
    detail:
      gotMigration === expected.schemaMigration
        ? `newest schema migration ${gotMigration ?? '(none)'} equals the manifest`
        : `newest schema migration is ${gotMigration ?? '(none)'}, the manifest says ${expected.schemaMigration ?? '(none)'}`,
  });
  return checks;
}

/** Highest RDB format version this check accepts (Redis 7.4/8 write 12; leaves room for newer). */
const MAX_RDB_VERSION = 30;

/**
 * Checks a decrypted Redis part is an RDB file: the "REDIS" magic, a four-digit version in a sane
 * range, and the EOF opcode (0xFF) before the trailing 8-byte checksum.
 */
export async function checkRdbFile(file: string): Promise<CheckOutcome> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const head = Buffer.alloc(9);
    await handle.read(head, 0, 9, 0);
    if (size < 18 || head.subarray(0, 5).toString('latin1') !== 'REDIS') {
      return { name: 'redis', ok: false, detail: 'the Redis part is not an RDB file (no "REDIS" header)' };
    }
    const versionText = head.subarray(5, 9).toString('latin1');
    const version = /^\d{4}$/.test(versionText) ? Number(versionText) : NaN;
    if (!(version >= 1 && version <= MAX_RDB_VERSION)) {
      return { name: 'redis', ok: false, detail: `the Redis part has an implausible RDB version "${versionText}"` };
    }
    const eof = Buffer.alloc(1);
    await handle.read(eof, 0, 1, size - 9);
    if (version >= 5 && eof[0] !== 0xff) {
      return { name: 'redis', ok: false, detail: 'the Redis part is truncated (no RDB end-of-file marker)' };
    }
    return { name: 'redis', ok: true, detail: `RDB version ${version}, ${size} bytes` };
  } finally {
    await handle.close();
  }
}
