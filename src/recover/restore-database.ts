/**
 * The database step of a restore: everything goes into a new database `<target>_incoming`, which
 * is checked against the manifest and only then swapped in under the target's name in one step;
 * the previous database is kept under a dated name (or dropped when asked). The target is never
 * touched before the swap, so a failure or a kill at any point leaves it as it was.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { availableParallelism } from 'node:os';
import type pg from 'pg';
import {
  assertDbName,
  connect,
  defaultRestoreJobs,
  pgEnv,
  pgRestoreArgv,
  pgRestoreEnv,
  userTableCount,
  type PgServer,
} from '../tools/postgres.js';
import { runTool } from '../tools/run.js';
import { BusyError, errorMessage, IntegrityError, PermafrostError, ToolError, UserError } from '../errors.js';
import type { DatabaseFacts, Manifest, ManifestFile } from '../vault/manifest.js';
import type { RunContext } from '../run-context.js';
import { applyChain, chainPlainBytes, compareTableHashes, type RestoreChain } from './chain.js';
import { decryptVerifiedPart, type DecryptSource } from './decrypt.js';
import { compareWithManifest, readArchiveToc, readRestoredFacts } from './verify.js';

/** A client session on the restore target, as pg_stat_activity shows it. */
export interface TargetSession {
  pid: number;
  /** application_name, or "" when the client set none. */
  application: string;
  /** The client's address, "local socket", or "unknown" when this role may not see it. */
  client: string;
  /** backend_start, ISO 8601. */
  since: string;
}

/** The restore target as found before anything is touched. */
export interface TargetState {
  exists: boolean;
  tables: number;
  /** Other sessions connected to it: pg_restore --clean would wait for their locks forever. */
  sessions: TargetSession[];
}

export interface DatabaseRestoreResult {
  snapshot: string;
  database: string;
  /** Whether the target did not exist before (else it was replaced). */
  created: boolean;
  /** The database that held the target's name before, kept under `name` unless `dropped`. */
  previous: { name: string; dropped: boolean } | null;
  /** Roles the roles part created on this cluster (existing ones are never altered). */
  rolesCreated: string[];
  /** Why the roles part was not applied, when it was not. */
  rolesNote: string | null;
  /** Login roles the roles part created without a password (the snapshot holds none): set one before a client that uses a password connects. */
  rolesWithoutPassword: string[];
  decryptMs: number;
  restoreMs: number;
  totalMs: number;
  bytes: number;
  /** Sessions ended by --terminate-sessions right before the swap. */
  terminatedSessions: TargetSession[];
}

/** Every other client session on database `name` (our own excluded). */
async function otherSessions(client: pg.Client, name: string): Promise<TargetSession[]> {
  const r = await client.query<{
    pid: number;
    application_name: string | null;
    client_addr: string | null;
    client_port: number | null;
    backend_start: Date | null;
  }>(
    `SELECT pid, application_name, client_addr::text AS client_addr, client_port, backend_start FROM pg_stat_activity
      WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY backend_start, pid`,
    [name],
  );
  return r.rows.map((row) => ({
    pid: row.pid,
    application: row.application_name ?? '',
    // client_port -1: a unix socket; both null: a session of another role that this one may not inspect.
    client: row.client_addr ?? (row.client_port === -1 ? 'local socket' : 'unknown'),
    since: row.backend_start ? row.backend_start.toISOString() : 'unknown',
  }));
}

/** One session in a sentence: "psql from local socket since 2026-…Z (pid 123)". */
export function describeSession(s: TargetSession): string {
  return `${s.application || 'an unnamed client'} from ${s.client} since ${s.since} (pid ${s.pid})`;
}

function describeSessions(sessions: readonly TargetSession[]): string {
  const shown = sessions.slice(0, 3).map(describeSession).join('; ');
  return sessions.length > 3 ? `${shown}; and ${sessions.length - 3} more` : shown;
}

function sessionsError(name: string, sessions: readonly TargetSession[]): PermafrostError {
  const n = sessions.length;
  return new PermafrostError(
    'server',
    `Database "${name}" has ${n} other session${n > 1 ? 's' : ''} (${describeSessions(sessions)}), whose locks restore would wait for forever; ` +
      'stop what uses it (for Mastodon: systemctl stop mastodon-web mastodon-sidekiq mastodon-streaming) and run restore again, or pass --terminate-sessions to end them.',
  );
}

/** Whether the target exists, how many user tables it holds and who else is connected, read without changing it. */
export async function inspectTarget(server: PgServer, name: string): Promise<TargetState> {
  let client: pg.Client;
  try {
    client = await connect(server, name);
  } catch (err) {
    // 3D000: invalid_catalog_name, the database does not exist yet.
    if ((err as { cause?: { code?: string } }).cause?.code === '3D000') return { exists: false, tables: 0, sessions: [] };
    throw err;
  }
  try {
    return { exists: true, tables: await userTableCount(client), sessions: await otherSessions(client, name) };
  } finally {
    await client.end();
  }
}

/**
 * Refuses a target that holds tables unless --force was given, and one with other sessions unless
 * --terminate-sessions was (they are ended only right before the swap); nothing has been touched yet.
 */
export function checkTarget(target: TargetState, name: string, opts: { force?: boolean; terminateSessions?: boolean }): void {
  if (target.tables > 0 && !opts.force) {
    throw new UserError(
      `Database "${name}" is not empty (${target.tables} tables); restore into a new database, or pass --force to replace its contents.`,
    );
  }
  if (target.sessions.length > 0 && !opts.terminateSessions) throw sessionsError(name, target.sessions);
}

/** Where the new copy is restored before the swap. */
export function incomingName(target: string): string {
  return `${target}_incoming`;
}

/** The name the previous database keeps after the swap: `<target>_before_<YYYYMMDD>_<HHMMSS>` (UTC). */
export function previousName(target: string, at: Date): string {
  const iso = at.toISOString();
  return `${target}_before_${iso.slice(0, 10).replace(/-/g, '')}_${iso.slice(11, 19).replace(/:/g, '')}`;
}

/** Databases restore never replaces: the maintenance database it connects to and the templates. */
const RESERVED = new Set(['postgres', 'template0', 'template1']);

/** Refuses, before anything is touched, a target whose incoming or kept names PostgreSQL would truncate (exit 2). */
export function assertTargetNames(target: string, key: string): void {
  assertDbName(target, key);
  if (RESERVED.has(target)) throw new UserError(`${key}: restore never replaces "${target}"; choose another database name.`);
  for (const derived of [incomingName(target), previousName(target, new Date(0))]) {
    try {
      assertDbName(derived, key);
    } catch (err) {
      throw new UserError(
        `${key}: "${target}" is too long: restore needs room for "${derived}" (at most 63 bytes), so choose a name of at most ${63 - (derived.length - target.length)} bytes.`,
        { cause: err },
      );
    }
  }
}

/**
 * `CREATE DATABASE` for the new copy, as the source had it: owner, template0, encoding and locale
 * (facts of manifests written before they were recorded are absent: the server's defaults then).
 */
export function createDatabaseSql(name: string, facts: Partial<DatabaseFacts>, owner: string | null): string {
  const ident = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const literal = (s: string): string => `'${s.replace(/'/g, "''")}'`;
  const parts = [`CREATE DATABASE ${ident(name)}`, 'TEMPLATE template0'];
  if (owner) parts.push(`OWNER ${ident(owner)}`);
  if (facts.encoding) parts.push(`ENCODING ${literal(facts.encoding)}`);
  if (facts.collate !== undefined) parts.push(`LC_COLLATE ${literal(facts.collate)}`);
  if (facts.ctype !== undefined) parts.push(`LC_CTYPE ${literal(facts.ctype)}`);
  if (facts.localeProvider === 'icu') {
    parts.push('LOCALE_PROVIDER icu');
    if (facts.iculocale) parts.push(`ICU_LOCALE ${literal(facts.iculocale)}`);
  }
  return parts.join(' ');
}

async function databaseExists(client: pg.Client, name: string): Promise<boolean> {
  const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return (r.rowCount ?? 0) > 0;
}

/** The dated name for the previous database; a second restore within the same second takes the next free second. */
async function freePreviousName(client: pg.Client, target: string): Promise<string> {
  const now = Date.now();
  for (let s = 0; s < 600; s++) {
    const name = previousName(target, new Date(now + s * 1000));
    if (!(await databaseExists(client, name))) return name;
  }
  throw new PermafrostError('server', `Too many databases named ${target}_before_…; drop the ones no longer needed and run restore again.`);
}

async function roleExists(client: pg.Client, role: string): Promise<boolean> {
  const r = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  return (r.rowCount ?? 0) > 0;
}

/** Of `roles`, those that may log in and have no password (read as the superuser restore connects as). */
async function loginRolesWithoutPassword(client: pg.Client, roles: string[]): Promise<string[]> {
  if (roles.length === 0) return [];
  const r = await client.query<{ name: string }>(
    'SELECT rolname AS name FROM pg_catalog.pg_authid WHERE rolname = ANY($1) AND rolcanlogin AND rolpassword IS NULL ORDER BY 1',
    [roles],
  );
  return r.rows.map((x) => x.name);
}

/** Runs the roles part's SQL in one transaction on the maintenance connection; returns the roles it created. */
async function applyRoles(client: pg.Client, sql: string, snapshot: string): Promise<string[]> {
  try {
    await client.query('BEGIN');
    await client.query(sql);
    const created = await client.query<{ name: string }>('SELECT name FROM pg_temp.permafrost_created_roles ORDER BY name');
    await client.query('COMMIT');
    return created.rows.map((r) => r.name);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw new PermafrostError(
      'server',
      `Could not create the roles of snapshot ${snapshot} (${errorMessage(err)}); connect as a superuser (e.g. PGUSER=postgres), or pass --no-owner --role NAME to give every object to one existing role.`,
      { cause: err },
    );
  }
}

/**
 * Ends the sessions on the target (with --terminate-sessions) and renames it away and the new copy
 * in, in one transaction; a session that connected meanwhile is ended and the swap tried again.
 */
async function swapIn(
  client: pg.Client,
  names: { target: string; incoming: string; previous: string | null },
  terminate: boolean,
): Promise<TargetSession[]> {
  const ident = (s: string): string => client.escapeIdentifier(s);
  const ended: TargetSession[] = [];
  for (let attempt = 0; ; attempt++) {
    if (names.previous) {
      const sessions = await otherSessions(client, names.target);
      if (sessions.length > 0 && !terminate) throw sessionsError(names.target, sessions);
      for (const s of sessions) {
        await client.query('SELECT pg_terminate_backend($1)', [s.pid]);
        if (!ended.some((e) => e.pid === s.pid)) ended.push(s);
      }
      // pg_terminate_backend only signals: wait until they are gone, as the rename needs no other sessions.
      const deadline = Date.now() + 5000;
      while ((await otherSessions(client, names.target)).some((x) => sessions.some((s) => s.pid === x.pid))) {
        if (Date.now() > deadline) {
          throw new PermafrostError(
            'server',
            `Could not end the sessions on database "${names.target}" (${describeSessions(sessions)}); stop the programs that use it and run restore again.`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    try {
      await client.query('BEGIN');
      if (names.previous) await client.query(`ALTER DATABASE ${ident(names.target)} RENAME TO ${ident(names.previous)}`);
      await client.query(`ALTER DATABASE ${ident(names.incoming)} RENAME TO ${ident(names.target)}`);
      await client.query('COMMIT');
      return ended;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      // 55006 object_in_use: a client connected between the check and the rename.
      if ((err as { code?: string }).code !== '55006' || attempt >= 5) throw err;
    }
  }
}

/** What the database is restored from: a full snapshot's pg_dump archive, or a delta-mode snapshot's chain (recover/chain.ts readChain). */
export type DatabaseContent = { kind: 'full'; file: ManifestFile } | { kind: 'chain'; chain: RestoreChain };

/** Options of the database step; the caller has checked the target with inspectTarget/checkTarget. */
export interface DatabaseRestoreOptions {
  server: PgServer;
  database: string;
  target: TargetState;
  manifest: Manifest;
  /** The snapshot's roles part; null in snapshots made before it existed. */
  rolesFile: ManifestFile | null;
  jobs?: number;
  noOwner?: boolean;
  /** With noOwner: the role that owns every restored object (pg_restore --role) and the database. */
  role?: string;
  terminateSessions?: boolean;
  dropPrevious?: boolean;
}

/**
 * Restores the snapshot's database as `opts.database`: the archive (a chain's schema archive)
 * decrypted and verified first, roles created when missing, restored into `<target>_incoming` (a
 * chain: pre-data, rows, deltas, post-data), checked against the manifest (a chain: every table's
 * count and hash too), then swapped in. Until the swap the target is as it was; a leftover
 * `_incoming` of a killed run is dropped first. The caller disposes the temp folder.
 */
export async function restoreDatabase(
  source: DecryptSource,
  content: DatabaseContent,
  opts: DatabaseRestoreOptions,
  ctx: RunContext,
): Promise<DatabaseRestoreResult> {
  const t0 = Date.now();
  const { snapshot } = source;
  const target = opts.database;
  const incoming = incomingName(target);
  const maintenance = await connect(opts.server, 'postgres');
  try {
    await lockTarget(maintenance, target);
    ctx.events.phase?.('decrypt');
    // While gpg decrypts the archive: the roles part applied, the owner checked, `_incoming` created.
    // None of it touches the target; a failure of the decryption is still the one reported.
    const decrypting = decryptArchive(source, content, ctx).then((archive) => ({ archive, decryptMs: Date.now() - t0 }));
    const preparing = prepareIncoming(maintenance, source, incoming, opts, ctx);
    let swapped = false;
    try {
      const [decrypted, prepared] = await Promise.allSettled([decrypting, preparing]);
      if (decrypted.status === 'rejected') throw decrypted.reason;
      const { archive, decryptMs } = decrypted.value;
      // The phases as they were printed before (decrypt, roles, restore): roles took place meanwhile.
      if (rolesApply(opts)) ctx.events.phase?.('roles');
      if (prepared.status === 'rejected') throw prepared.reason;
      const roles = prepared.value;
      ctx.events.phase?.('restore');
      await restoreIntoIncoming(source, content, archive, incoming, opts, ctx);
      ctx.events.phase?.('check');
      await checkIncoming(content, archive, incoming, snapshot.id, opts);
      ctx.events.phase?.('swap');
      const { previous, terminatedSessions } = await swapTarget(maintenance, target, incoming, opts);
      swapped = true;
      if (previous && opts.dropPrevious) await maintenance.query(`DROP DATABASE ${maintenance.escapeIdentifier(previous)}`);
      const totalMs = Date.now() - t0;
      return {
        snapshot: snapshot.id,
        database: target,
        created: previous === null,
        previous: previous ? { name: previous, dropped: opts.dropPrevious ?? false } : null,
        ...roles,
        decryptMs,
        restoreMs: totalMs - decryptMs,
        totalMs,
        bytes: content.kind === 'full' ? content.file.plainBytes : chainPlainBytes(content.chain),
        terminatedSessions,
      };
    } finally {
      if (!swapped)
        await maintenance.query(`DROP DATABASE IF EXISTS ${maintenance.escapeIdentifier(incoming)} WITH (FORCE)`).catch(() => undefined);
    }
  } finally {
    await maintenance.end().catch(() => undefined);
  }
}

/** One restore per target at a time: another one would drop our _incoming or swap under us. */
async function lockTarget(maintenance: pg.Client, target: string): Promise<void> {
  const lock = await maintenance.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [
    `permafrost restore ${target}`,
  ]);
  if (!lock.rows[0]?.ok) throw new BusyError(`Another restore into database "${target}" is running on this server; wait for it to finish.`);
}

/** The archive decrypted and verified into the temp folder; a chain's is its base's schema part (small: no table data), the rows stream in later. */
async function decryptArchive(source: DecryptSource, content: DatabaseContent, ctx: RunContext): Promise<string> {
  return decryptVerifiedPart(
    content.kind === 'full' ? source : { ...source, snapshot: content.chain.links[0]!, restoring: source.snapshot },
    content.kind === 'full' ? content.file : content.chain.schema,
    ctx,
    'decrypt',
    // A full archive's data offsets written in while gpg writes it: pg_restore -j then seeks instead of scanning.
    { indexArchive: content.kind === 'full' },
  );
}

type RolesOutcome = Pick<DatabaseRestoreResult, 'rolesCreated' | 'rolesNote' | 'rolesWithoutPassword'>;

/** Whether the snapshot's roles part is applied here. */
function rolesApply(opts: DatabaseRestoreOptions): boolean {
  return !opts.noOwner && opts.rolesFile !== null;
}

/** What restore does before the archive is needed: the roles part applied, the owner checked, a fresh `_incoming`. */
async function prepareIncoming(
  maintenance: pg.Client,
  source: DecryptSource,
  incoming: string,
  opts: DatabaseRestoreOptions,
  ctx: RunContext,
): Promise<RolesOutcome> {
  const roles = await restoreRoles(maintenance, source, opts, ctx);
  const owner = await databaseOwner(maintenance, opts);
  await createIncoming(maintenance, incoming, opts.manifest.database, owner);
  return roles;
}

/** The roles part applied (missing roles created), or why it was not. */
async function restoreRoles(
  maintenance: pg.Client,
  source: DecryptSource,
  opts: DatabaseRestoreOptions,
  ctx: RunContext,
): Promise<RolesOutcome> {
  if (opts.noOwner)
    return { rolesCreated: [], rolesNote: `not applied (--no-owner${opts.role ? ` --role ${opts.role}` : ''})`, rolesWithoutPassword: [] };
  if (!opts.rolesFile) {
    const rolesNote = `snapshot ${source.snapshot.id} has no roles part (made before roles were captured); the owners must exist here`;
    return { rolesCreated: [], rolesNote, rolesWithoutPassword: [] };
  }
  const sql = await readFile(await decryptVerifiedPart(source, opts.rolesFile, ctx), 'utf8');
  const rolesCreated = await applyRoles(maintenance, sql, source.snapshot.id);
  // With rolePasswords true, a role without one had none at the source either (peer authentication).
  const rolesWithoutPassword = opts.manifest.rolePasswords !== true ? await loginRolesWithoutPassword(maintenance, rolesCreated) : [];
  return { rolesCreated, rolesNote: null, rolesWithoutPassword };
}

/** The restored database's owner (--role with --no-owner, else the one it had), which must exist here. */
async function databaseOwner(maintenance: pg.Client, opts: DatabaseRestoreOptions): Promise<string | null> {
  const owner = opts.noOwner ? (opts.role ?? null) : (opts.manifest.database.owner ?? null);
  if (owner && !(await roleExists(maintenance, owner))) {
    throw new UserError(
      `Role "${owner}" ${opts.noOwner ? 'given to --role' : 'that owned the database'} does not exist on this server; create it (CREATE ROLE ${owner} LOGIN), or pass --no-owner --role NAME with an existing role.`,
    );
  }
  return owner;
}

/** A fresh `<target>_incoming` with the snapshot's encoding and locale; a leftover of a killed run dropped first. */
async function createIncoming(maintenance: pg.Client, incoming: string, facts: Manifest['database'], owner: string | null): Promise<void> {
  // Never swapped in, so never anyone's data: a leftover of a run that was killed.
  await maintenance.query(`DROP DATABASE IF EXISTS ${maintenance.escapeIdentifier(incoming)} WITH (FORCE)`);
  try {
    await maintenance.query(createDatabaseSql(incoming, facts, owner));
  } catch (err) {
    throw new PermafrostError(
      'server',
      `Could not create database "${incoming}" (${errorMessage(err)}); for a missing locale (${facts.collate ?? 'the default'}), install it on this server (locale-gen) and run restore again.`,
      { cause: err },
    );
  }
}

/** pg_restore of the archive (a chain: its sections, rows and deltas) into `_incoming`; a tool failure says the target was not touched. */
async function restoreIntoIncoming(
  source: DecryptSource,
  content: DatabaseContent,
  archive: string,
  incoming: string,
  opts: DatabaseRestoreOptions,
  ctx: RunContext,
): Promise<void> {
  const { server } = opts;
  const snapshot = source.snapshot;
  const jobs = opts.jobs ?? defaultRestoreJobs(availableParallelism());
  const restoreOpts = { noOwner: opts.noOwner, role: opts.role };
  try {
    if (content.kind === 'full') {
      await runTool({
        argv: pgRestoreArgv(server, incoming, archive, { jobs, ...restoreOpts }),
        env: pgRestoreEnv(pgEnv(server)),
        doing: `restoring snapshot ${snapshot.id} into "${incoming}"`,
        signal: ctx.signal,
      });
    } else {
      await applyChain(
        { secret: source.secret, temp: source.temp },
        content.chain,
        {
          server,
          database: incoming,
          archive,
          // Parallel jobs help post-data (index builds); pre-data is a list of CREATE statements.
          restoreArgv: (section) =>
            pgRestoreArgv(server, incoming, archive, { ...restoreOpts, section, jobs: section === 'post-data' ? jobs : 1 }),
          jobs,
        },
        ctx,
      );
    }
  } catch (err) {
    if (ctx.signal.aborted || !(err instanceof ToolError)) throw err;
    const tool = content.kind === 'full' ? 'pg_restore' : path.basename(err.argv[0] ?? 'pg_restore');
    throw new PermafrostError(
      'tool',
      `${tool} failed restoring snapshot ${snapshot.id} into "${incoming}"; database "${opts.database}" was not touched: read the lines below, fix the cause and run restore again.`,
      { cause: err, details: err.details },
    );
  }
}

/** `_incoming` compared with the manifest (a chain: every table's hash too); any mismatch is an IntegrityError. */
async function checkIncoming(
  content: DatabaseContent,
  archive: string,
  incoming: string,
  snapshot: string,
  opts: DatabaseRestoreOptions,
): Promise<void> {
  const { server, manifest } = opts;
  const jobs = opts.jobs ?? defaultRestoreJobs(availableParallelism());
  // Read at once, on their own connections: the hashes of a chain take the cores the restore has just used.
  const [toc, restored, hashes] = await Promise.all([
    // The archive's table of contents only for a manifest made before manifests listed the tables.
    manifest.tables ? null : readArchiveToc(server, archive),
    readRestoredFacts({ ...server, name: incoming }),
    content.kind === 'chain' ? compareTableHashes(server, incoming, content.chain, jobs) : null,
  ]);
  const checks = compareWithManifest(manifest, toc, restored);
  if (hashes) checks.push(hashes);
  const bad = checks.filter((c) => !c.ok);
  if (bad.length > 0) {
    throw new IntegrityError(
      `The restored copy of snapshot ${snapshot} does not match its manifest (${bad.map((c) => c.detail).join('; ')}); database "${opts.database}" was not touched: run permafrost verify ${snapshot} and restore another snapshot.`,
    );
  }
}

/** `_incoming` renamed to the target in one transaction, the target (if any) kept under a dated name. */
async function swapTarget(
  maintenance: pg.Client,
  target: string,
  incoming: string,
  opts: DatabaseRestoreOptions,
): Promise<{ previous: string | null; terminatedSessions: TargetSession[] }> {
  // Read again now: the target may have been created or dropped since it was inspected.
  const previous = (await databaseExists(maintenance, target)) ? await freePreviousName(maintenance, target) : null;
  try {
    return { previous, terminatedSessions: await swapIn(maintenance, { target, incoming, previous }, opts.terminateSessions ?? false) };
  } catch (err) {
    if (err instanceof PermafrostError) throw err;
    throw new PermafrostError(
      'server',
      `Could not swap the restored copy in as "${target}" (${errorMessage(err)}); the renames are one transaction, so "${target}" is as it was: run restore again.`,
      { cause: err },
    );
  }
}
