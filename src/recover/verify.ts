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
  userTables,
  type PgServer,
} from '../tools/postgres.js';
import { runTool } from '../tools/run.js';
import type { RunContext } from '../run-context.js';
import { qualified } from '../capture/delta-sql.js';
import type { Manifest, MastodonFacts, TableName } from '../vault/manifest.js';
import { selfIdentity, type ProcessIdentity } from '../vault/lock.js';
import type { JobSecrets } from '../config/secret-values.js';

/**
 * A `pg_restore --list` line of an entry that creates a table: its catalog id is pg_class's
 * (1259, fixed in every PostgreSQL), which TABLE DATA (0 OID) and TABLE ATTACH (0 0) lines lack.
 * What follows "TABLE " is schema, name and owner joined by spaces, each of which may hold spaces
 * itself: the text is never split into names, only matched against tables already known.
 */
const TOC_TABLE_LINE = /^\d+; 1259 \d+ TABLE (.*)$/;

/** An archive's table of contents as `pg_restore --list` prints it, and how many tables it creates. */
export interface ArchiveToc {
  text: string;
  tables: number;
}

/** Reads an archive's table of contents with pg_restore --list. */
export async function readArchiveToc(db: Pick<DatabaseConfig, 'binDir'>, archive: string): Promise<ArchiveToc> {
  const argv = pgRestoreListArgv(db, archive);
  try {
    const { stdout } = await runTool({ argv, doing: "reading the archive's table of contents" }, { maxBuffer: 256 * 1024 * 1024 });
    return { text: stdout, tables: stdout.split('\n').filter((l) => TOC_TABLE_LINE.test(l)).length };
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

/** pg_restore --list prints a name with its line breaks made spaces (and an empty schema as "-"). */
const tocText = (name: string): string => name.replace(/[\r\n]/g, ' ');

/**
 * For a manifest without `tables` (written before it existed): the table entries of the archive's
 * table of contents that no restored table accounts for, as their text after "TABLE ". A line
 * counts as restored when it starts with a restored table's schema and name and a space (the owner
 * follows), so no name is ever cut out of the text, whatever spaces, quotes or dots it holds.
 */
export function tocTablesMissing(toc: string, restored: TableName[]): string[] {
  const prefixes = restored.map((t) => `${tocText(t.schema)} ${tocText(t.table)} `);
  const missing: string[] = [];
  for (const line of toc.split('\n')) {
    const rest = TOC_TABLE_LINE.exec(line)?.[1];
    if (rest !== undefined && !prefixes.some((p) => rest.startsWith(p))) missing.push(rest);
  }
  return missing;
}

/**
 * The server the test-restore runs on: verify.connection over database, with the scratch name.
 * A backup device without a database section names its server in verify.connection, or else
 * (as with no config file, `--vault`) uses the one libpq's environment names (PGHOST, PGPORT, …).
 */
export function verifyServer(config: Config, scratch: string, secrets: Pick<JobSecrets, 'database' | 'verifyDatabase'>): PgServer {
  const c = config.verify?.connection;
  const base: DatabaseConfig | undefined = config.role === 'source' ? config.database : undefined;
  if (!c) {
    return base
      ? { ...base, name: scratch, password: secrets.database }
      : { ...databaseSchema.parse({ name: scratch }), password: undefined };
  }
  return {
    password: secrets.verifyDatabase,
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
export async function createScratch(server: PgServer): Promise<void> {
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
export async function dropScratch(server: PgServer): Promise<void> {
  const admin = await connect(server, 'postgres');
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(server.name)} WITH (FORCE)`);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Restores the archive into the scratch database; rejects with pg_restore's own last error line. */
export async function restoreIntoScratch(
  server: PgServer,
  archive: string,
  jobs: number | undefined,
  ctx: Pick<RunContext, 'signal'>,
): Promise<void> {
  // As restore does: parallel jobs and restore-friendly session settings (a scratch database needs no durable commits).
  const argv = verifyRestoreArgv(server, server.name, archive, { jobs: jobs ?? defaultRestoreJobs(availableParallelism()) });
  try {
    await runTool({ argv, env: pgRestoreEnv(pgEnv(server)), doing: 'restoring the archive', signal: ctx.signal });
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
  /** Every ordinary or partitioned table present outside the system schemas (tools/postgres.ts userTables). */
  tables: TableName[];
}

export async function readRestoredFacts(server: PgServer): Promise<RestoredFacts> {
  const client: pg.Client = await connect(server, server.name);
  try {
    return { facts: await mastodonFacts(client), tables: await userTables(client) };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface CheckOutcome {
  name: string;
  ok: boolean;
  detail: string;
}

/** A table's two names as one key that cannot collide ("a.b"."c" and "a"."b.c" stay two). */
const tableKey = (t: TableName): string => JSON.stringify([t.schema, t.table]);

/** A table's name for a message: each part quoted as SQL would (a space, quote or dot stays readable), line breaks shown as \n. */
const shown = (t: TableName): string => qualified(t.schema, t.table).replace(/[\r\n\t]/g, (c) => JSON.stringify(c).slice(1, -1));

/**
 * Compares the restored database with the manifest: every table it lists (`tables`) is in the
 * restored catalog; a manifest made before it listed them is compared with the archive's table of
 * contents (`toc`, read only then) instead. Then the Mastodon row counts and newest migration.
 */
export function compareWithManifest(
  expected: Pick<Manifest, 'mastodon' | 'tables'>,
  toc: ArchiveToc | null,
  restored: RestoredFacts,
): CheckOutcome[] {
  const checks: CheckOutcome[] = [];
  const present = new Set(restored.tables.map(tableKey));
  if (expected.tables) {
    const missing = expected.tables.filter((t) => !present.has(tableKey(t))).map(shown);
    checks.push({
      name: 'tables',
      ok: missing.length === 0,
      detail:
        missing.length === 0
          ? `all ${expected.tables.length} tables of the manifest exist after restore`
          : `table${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of the manifest ${missing.length > 1 ? 'are' : 'is'} missing after restore`,
    });
  } else {
    const missing = toc ? tocTablesMissing(toc.text, restored.tables) : null;
    checks.push({
      name: 'tables',
      ok: missing !== null && missing.length === 0,
      detail:
        missing === null
          ? 'the manifest lists no tables and the archive was not read'
          : missing.length === 0
            ? `all ${toc!.tables} tables of the archive exist after restore`
            : `the archive's table entr${missing.length > 1 ? 'ies' : 'y'} ${missing.map((m) => JSON.stringify(m)).join(', ')} (schema, name, owner) ${missing.length > 1 ? 'have' : 'has'} no table after restore`,
    });
  }
  const mastodon = expected.mastodon;
  if (mastodon === null) {
    checks.push({ name: 'row-counts', ok: true, detail: 'the manifest records no Mastodon facts (not a Mastodon database)' });
    return checks;
  }
  const wrong: string[] = [];
  for (const [table, want] of Object.entries(mastodon.rowCounts)) {
    if (!present.has(tableKey({ schema: 'public', table }))) {
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
        ? `row counts equal the manifest (${Object.entries(mastodon.rowCounts)
            .map(([t, n]) => `${t} ${n}`)
            .join(', ')})`
        : wrong.join('; '),
  });
  const gotMigration = restored.facts?.schemaMigration ?? null;
  checks.push({
    name: 'schema-migration',
    ok: gotMigration === mastodon.schemaMigration,
    detail:
      gotMigration === mastodon.schemaMigration
        ? `newest schema migration ${gotMigration ?? '(none)'} equals the manifest`
        : `newest schema migration is ${gotMigration ?? '(none)'}, the manifest says ${mastodon.schemaMigration ?? '(none)'}`,
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
