/**
 * Restoring a delta-mode snapshot (manifest `chain`): the chain back to its base is resolved and
 * every file it needs checked (size and SHA-256) before anything is decrypted, then applied in the
 * one order every restore uses (permafrost restore, verify, the vault's restore.sh): the base's
 * schema pre-data, the base's rows, each delta in order, the base's schema post-data; last the
 * restored tables' counts and hashes are compared with the snapshot's manifest.
 */
import { lstat, rm } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { errorMessage, PermafrostError } from '../errors.js';
import type { RunContext } from '../run-context.js';
import {
  HASH_SESSION_SQL,
  HASHRECORD_PROBE_SQL,
  HASHTEXT_PROBE_SQL,
  qualified,
  quoteIdent,
  rowHashOf,
  tableHashSql,
  type RowHashKind,
} from '../capture/delta-sql.js';
import { connect, pgEnv, pgRestoreEnv, psqlArgv, serverName, type ArchiveSection, type PgServer } from '../tools/postgres.js';
import { runTool, type ToolRun } from '../tools/run.js';
import { sha256File } from '../crypto/hash.js';
import type { ChainTable, ManifestFile, PartName } from '../vault/manifest.js';
import { signatureProblem, type SignerKey } from '../crypto/signature.js';
import { listSnapshots, partPath, type SnapshotEntry } from '../vault/store.js';
import { diskSpace } from '../vault/fs-durable.js';
import { decryptPartInto, fileSink, type DecryptSource } from './decrypt.js';
import { parallelRowsSink } from './parallel-rows.js';
import { ChainPlan, DeltaFormError, PlanTooBig } from './chain-plan.js';
import type { CheckOutcome } from './verify.js';

/** Deltas decrypted at once while the plan is read. */
const AHEAD = 4;

/** Space left free in the temp folder beside the base's rows when they are written there to be loaded in parallel. */
const ROOM = 256 * 1024 * 1024;

/** A delta-mode snapshot's chain, resolved and checked: what a restore reads, in the order it applies it. */
export interface RestoreChain {
  /** The base first, the snapshot to restore last. */
  links: SnapshotEntry[];
  /** The base's schema part: pg_dump -Fc of the pre-data and post-data sections. */
  schema: ManifestFile;
  /** What psql applies between pre-data and post-data: the base's rows, then each delta, in order. */
  sql: { snapshot: SnapshotEntry; file: ManifestFile }[];
  /** The full state the snapshot represents, checked after the restore (its manifest's chain.tables). */
  tables: ChainTable[];
  /** How the rows of `tables` were hashed (its manifest's chain.rowHash; md5 when absent). */
  rowHash: RowHashKind;
}

/** The chain, or why it cannot be restored: a phrase naming the missing or broken snapshot. */
export type ChainRead = { chain: RestoreChain } | { problem: string };

/** The parts of one link a restore reads: the base's schema and rows, a delta's delta, the roles of the snapshot itself. */
function neededParts(link: SnapshotEntry, isTarget: boolean): ManifestFile[] {
  const files = link.manifest?.files ?? [];
  const want: PartName[] = link.manifest?.chain?.kind === 'base' ? ['schema', 'rows'] : ['delta'];
  if (isTarget) want.push('roles');
  return files.filter((f) => want.includes(f.part));
}

/** What is wrong with one file against its manifest entry (size, then SHA-256), read where partPath finds the good copy. */
async function fileProblem(link: SnapshotEntry, file: ManifestFile): Promise<string | null> {
  const where = (await partPath(link, file.name)).path;
  const st = await lstat(where).catch(() => null);
  if (!st?.isFile()) return `${file.name} of snapshot ${link.id} is missing`;
  if (st.size !== file.bytes)
    return `${file.name} of snapshot ${link.id} is ${st.size} bytes where its manifest says ${file.bytes} (truncated or replaced)`;
  if ((await sha256File(where)).sha256 !== file.sha256)
    return `${file.name} of snapshot ${link.id} does not match the SHA-256 in its manifest (tampered or damaged)`;
  return null;
}

/**
 * Follows `reference` from `snapshot` back to its base. Every link must be there (in the vault
 * folder or as a `.stversions` copy on a device), have a valid manifest, belong to the same base
 * at the depth one less and hold the same schema (ddl); with a signer, every manifest's signature
 * must be good. Then every file the restore reads is checked for size and SHA-256, before the
 * first is decrypted.
 */
export async function readChain(
  vaultDir: string,
  snapshot: SnapshotEntry,
  signer: SignerKey | null,
  ctx: Pick<RunContext, 'events'>,
): Promise<ChainRead> {
  const top = snapshot.manifest?.chain;
  if (!top) return { problem: `snapshot ${snapshot.id} is not a delta-mode snapshot` };
  const byId = new Map((await listSnapshots(vaultDir, { versions: true })).map((s) => [s.id, s]));
  const links = [snapshot];
  for (let cur = top; cur.reference !== null; ) {
    const ref = cur.reference;
    const needs = `it needs snapshot ${ref} (depth ${cur.depth - 1} of its chain)`;
    const entry = byId.get(ref);
    if (!entry) return { problem: `${needs}, which is missing` };
    const link = entry.manifest?.chain;
    if (!entry.manifest) return { problem: `${needs}, which is damaged (${entry.problem ?? 'no manifest'})` };
    if (!link) return { problem: `${needs}, which is a full snapshot, not part of its chain` };
    if (link.base !== top.base) return { problem: `${needs}, which belongs to the chain of base ${link.base}, not ${top.base}` };
    if (link.depth !== cur.depth - 1) return { problem: `${needs}, which is at depth ${link.depth}` };
    if (link.ddl !== top.ddl) return { problem: `${needs}, whose schema (chain.ddl) is not the same` };
    links.unshift(entry);
    cur = link;
  }
  if (signer) {
    // The snapshot itself was checked by the caller (requireSignedManifest), before it was used at all.
    for (const link of links.slice(0, -1)) {
      const problem = await signatureProblem(link.dir, signer).catch(
        (err: unknown) => `its manifest cannot be read to check the signature (${errorMessage(err)})`,
      );
      if (problem) return { problem: `it needs snapshot ${link.id}, whose signature check fails: ${problem}` };
    }
  }
  ctx.events.phase?.('check chain');
  for (const link of links) {
    for (const file of neededParts(link, link === snapshot)) {
      const problem = await fileProblem(link, file);
      if (problem) return { problem };
    }
  }
  const base = links[0]!;
  const find = (link: SnapshotEntry, part: PartName): ManifestFile => link.manifest!.files.find((f) => f.part === part)!;
  return {
    chain: {
      links,
      schema: find(base, 'schema'),
      sql: links.map((link, i) => ({ snapshot: link, file: find(link, i === 0 ? 'rows' : 'delta') })),
      tables: top.tables,
      rowHash: rowHashOf(top),
    },
  };
}

/** The plaintext bytes a chain restore reads: the schema archive and every SQL part. */
export function chainPlainBytes(chain: RestoreChain): number {
  return chain.schema.plainBytes + chain.sql.reduce((n, s) => n + s.file.plainBytes, 0);
}

/** Where and how a chain is applied: the database (already created), and pg_restore's argv for one section of the schema archive. */
export interface ChainTarget {
  server: PgServer;
  database: string;
  /** The schema archive, decrypted into the private temp folder. */
  archive: string;
  restoreArgv: (section: ArchiveSection) => string[];
  /** Connections for the temporary key indexes (as many as pg_restore's post-data jobs). */
  jobs?: number;
}

/** A keyed table the deltas delete from, and how many of them do. */
export interface KeyIndexTable {
  schema: string;
  table: string;
  key: string[];
  rows: number;
  deletes: number;
}

/**
 * The tables worth a temporary index on their primary-key columns while the deltas are applied:
 * at least `minDeletes` deltas of the chain delete rows from them by key (`DELETE … USING` the
 * keys), which without an index is a scan of the whole table each time (indexes and constraints are
 * post-data, built after the deltas). Largest first (by the snapshot's count), for the workers.
 */
export function keyIndexTables(chain: Pick<RestoreChain, 'links' | 'tables'>, minDeletes = 2): KeyIndexTable[] {
  const deletes = new Map<string, number>();
  const id = (schema: string, table: string): string => JSON.stringify([schema, table]);
  for (const link of chain.links.slice(1))
    for (const t of link.manifest?.chain?.tables ?? [])
      if (t.key && (t.deleted ?? 0) > 0) deletes.set(id(t.schema, t.table), (deletes.get(id(t.schema, t.table)) ?? 0) + 1);
  return chain.tables
    .filter((t): t is ChainTable & { key: string[] } => t.key !== null && t.key.length > 0)
    .map((t) => ({ schema: t.schema, table: t.table, key: t.key, rows: t.rows, deletes: deletes.get(id(t.schema, t.table)) ?? 0 }))
    .filter((t) => t.deletes >= minDeletes)
    .sort((a, b) => b.rows - a.rows);
}

/** Runs `work` on every item with `jobs` connections to `database` at once; every connection ends before it returns or throws. */
async function onConnections<T>(
  server: PgServer,
  database: string,
  items: T[],
  jobs: number,
  work: (client: pg.Client, item: T) => Promise<void>,
): Promise<void> {
  const queue = [...items];
  const worker = async (): Promise<void> => {
    const client = await connect(server, database);
    try {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await work(client, next);
    } catch (err) {
      queue.length = 0; // the others stop after their current item
      throw err;
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Builds a temporary index on the key columns of each table (in parallel), for the deltas' deletes;
 * returns the indexes made, by name as PostgreSQL chose it (schema-qualified), to be dropped before
 * post-data builds the real ones. Before post-data the tables have no index of their own.
 */
async function createKeyIndexes(target: ChainTarget, tables: KeyIndexTable[]): Promise<string[]> {
  const made: string[] = [];
  await onConnections(target.server, target.database, tables, target.jobs ?? 1, async (client, t) => {
    const rel = qualified(t.schema, t.table);
    // As pg_restore's sessions have it (tools/postgres.ts pgRestoreEnv): room to sort the keys in memory.
    await client.query("SET maintenance_work_mem = '256MB'");
    const before = await client.query<{ oid: number }>('SELECT indexrelid::int8 AS oid FROM pg_index WHERE indrelid = $1::regclass', [rel]);
    const cols = t.key.map(quoteIdent).join(', ');
    await client.query(`CREATE INDEX ON ${rel} (${cols})`);
    // A table just loaded has no statistics: without them the planner takes the deletes' join for a whole-table one and scans.
    await client.query(`ANALYZE ${rel} (${cols})`);
    const after = await client.query<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indrelid = $1::regclass AND NOT (i.indexrelid::int8 = ANY($2::int8[]))`,
      [rel, before.rows.map((r) => r.oid)],
    );
    made.push(...after.rows.map((r) => r.name));
  });
  return made;
}

/**
 * Reads the chain's deltas, newest first, into a plan (recover/chain-plan.ts); null when one is not
 * in the form permafrost writes or their keys would not fit the memory budget (then the chain is
 * replayed, and the log says why). Rejects with a delta's IntegrityError or the stop.
 */
async function readPlan(
  source: Omit<DecryptSource, 'snapshot'>,
  chain: RestoreChain,
  rowsFile: string,
  ctx: Pick<RunContext, 'signal' | 'events' | 'log'>,
): Promise<ChainPlan | null> {
  const plan = new ChainPlan(chain.tables, rowsFile);
  const deltas = chain.sql.slice(1).reverse();
  // The deltas are decrypted AHEAD at a time (gpg waits more than it computes), each by gpg into a
  // private file beside the base's rows, then read in order, newest first, and removed.
  const fetched = new Map<number, Promise<string>>();
  const fetch = (i: number): void => {
    const d = deltas[i];
    if (!d || fetched.has(i)) return;
    const file = path.join(source.temp.dir, `delta-${i}.sql`);
    const p = decryptPartInto({ ...source, snapshot: d.snapshot }, d.file, () => fileSink(file), ctx).then(() => file);
    p.catch(() => undefined);
    fetched.set(i, p);
  };
  try {
    for (const [i, { snapshot, file }] of deltas.entries()) {
      for (let j = i; j < i + AHEAD; j++) fetch(j);
      const plain = await fetched.get(i)!;
      try {
        await plan.readDeltaFile(plain, i === 0);
      } catch (err) {
        if (err instanceof DeltaFormError) throw new DeltaFormError(`${file.name} of snapshot ${snapshot.id}: ${err.message}`);
        throw err;
      } finally {
        await rm(plain, { force: true });
      }
    }
    plan.seal();
    return plan;
  } catch (err) {
    if (!(err instanceof DeltaFormError || err instanceof PlanTooBig)) throw err;
    ctx.log('info', `the deltas are replayed one by one instead of merged: ${err.message}`, { chain: chain.links.at(-1)!.id });
    return null;
  } finally {
    // No gpg left running on a failure, and no delta's plaintext left (the temp folder is removed after us too).
    await Promise.allSettled(fetched.values());
    await Promise.all([...fetched.keys()].map((i) => rm(path.join(source.temp.dir, `delta-${i}.sql`), { force: true })));
    await plan.file.close().catch(() => undefined);
  }
}

/**
 * Applies the chain into `target.database`: pre-data, then the rows, then post-data (indexes,
 * constraints, matview refresh). The rows: when the temp folder has room, the deltas are read
 * (newest first, while the base is decrypted) into a plan, and the base's rows are loaded on
 * `jobs` sessions without the rows the deltas replaced or deleted, beside the rows that win
 * (chain-plan.ts); else, or when the plan cannot be made, every SQL part is streamed from gpg into
 * psql in order (one transaction each), the base's rows on `jobs` sessions when there is room for
 * them. Rejects with the failing tool's ToolError, or the IntegrityError of a damaged part.
 */
export async function applyChain(
  source: Omit<DecryptSource, 'snapshot'>,
  chain: RestoreChain,
  target: ChainTarget,
  ctx: Pick<RunContext, 'signal' | 'events' | 'log'>,
): Promise<void> {
  const { server, database } = target;
  const { events, signal } = ctx;
  const env = pgRestoreEnv(pgEnv(server));
  const section = async (s: ArchiveSection): Promise<void> => {
    events.phase?.(`restore ${s}`);
    await runTool({
      argv: target.restoreArgv(s),
      env,
      doing: `restoring the ${s} schema of snapshot ${chain.links[0]!.id} into "${database}"`,
      signal,
    });
  };
  await section('pre-data');
  const jobs = target.jobs ?? 1;
  const psqlFor = (snapshot: SnapshotEntry, file: ManifestFile): ToolRun => ({
    argv: psqlArgv(server, database),
    env,
    doing: `applying ${file.name} of snapshot ${snapshot.id}`,
  });
  const base = chain.sql[0]!;
  const deltaBytes = chain.sql.slice(1).reduce((n, s) => n + s.file.plainBytes, 0);
  const free = (await diskSpace(source.temp.dir)).free;
  const rowsFile = path.join(source.temp.dir, 'delta-rows.sql');
  let replay = chain.sql.slice(1);
  try {
    // On disk at the peak: the base's rows, the plan's winning rows (at most the deltas) and the deltas decrypted ahead (at most all of them).
    if (replay.length > 0 && free > base.file.plainBytes + 2 * deltaBytes + ROOM) {
      // Two phases: the deltas read (the base decrypting into the temp folder meanwhile), then the rows loaded.
      events.phase?.('read deltas');
      const what = `apply ${base.file.part} ${base.snapshot.id}`;
      const planned = readPlan(source, chain, rowsFile, ctx).then((plan) => {
        events.phase?.(what);
        return plan;
      });
      planned.catch(() => undefined);
      const loaded = decryptPartInto(
        { ...source, snapshot: base.snapshot },
        base.file,
        (sig) => parallelRowsSink(path.join(source.temp.dir, 'base-rows.sql'), psqlFor(base.snapshot, base.file), jobs, sig, planned),
        ctx,
        what,
      );
      // A delta's own failure explains the run before the base load it stopped.
      const [plan, load] = await Promise.allSettled([planned, loaded]);
      if (plan.status === 'rejected') throw plan.reason;
      if (load.status === 'rejected') throw load.reason;
      if (plan.value) replay = [];
    } else {
      replay = chain.sql;
    }
    await replayParts(source, replay, chain, target, ctx, psqlFor);
  } finally {
    await rm(rowsFile, { force: true });
  }
  await section('post-data');
}

/** The parts applied one after another, each streamed from gpg into psql (the base's rows, if among them, on `jobs` sessions when there is room). */
async function replayParts(
  source: Omit<DecryptSource, 'snapshot'>,
  parts: RestoreChain['sql'],
  chain: RestoreChain,
  target: ChainTarget,
  ctx: Pick<RunContext, 'signal' | 'events'>,
  psqlFor: (snapshot: SnapshotEntry, file: ManifestFile) => ToolRun,
): Promise<void> {
  const { server, database } = target;
  const keyed = keyIndexTables(chain);
  let keyIndexes: string[] = [];
  for (const { snapshot, file } of parts) {
    const isBase = file.part === 'rows';
    if (!isBase && keyIndexes.length === 0 && keyed.length > 0) {
      ctx.events.phase?.('key indexes');
      keyIndexes = await createKeyIndexes(target, keyed);
      keyed.length = 0;
    }
    const what = `apply ${file.part} ${snapshot.id}`;
    ctx.events.phase?.(what);
    const psql = psqlFor(snapshot, file);
    const jobs = target.jobs ?? 1;
    // The base's rows (every table whole) on `jobs` sessions when the temp folder holds their plaintext; deltas are small.
    const parallel = isBase && jobs > 1 && (await diskSpace(source.temp.dir)).free > file.plainBytes + ROOM;
    await decryptPartInto(
      { ...source, snapshot },
      file,
      parallel ? (sig) => parallelRowsSink(path.join(source.temp.dir, 'base-rows.sql'), psql, jobs, sig) : psql,
      ctx,
      what,
    );
  }
  if (keyIndexes.length > 0) {
    const client = await connect(server, database);
    try {
      await client.query(`DROP INDEX ${keyIndexes.join(', ')}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * One table's count and hash as the restored copy has them; null when the table is not there;
 * 'unhashable' when the manifest marks it hashRecord but a column's type has no extended hash
 * function (a manifest permafrost never writes: edited by hand).
 */
async function restoredHash(
  client: pg.Client,
  t: ChainTable,
  kind: RowHashKind,
): Promise<{ rows: number; hash: string } | null | 'unhashable'> {
  try {
    const r = await client.query<{ rows: string; hash: string }>(tableHashSql(t.schema, t.table, { kind, record: t.hashRecord }));
    const row = r.rows[0]!;
    return { rows: Number(row.rows), hash: row.hash };
  } catch (err) {
    // 42P01 undefined_table, 3F000 invalid_schema_name; 42883 undefined_function: hash_record_extended
    // found no extended hash function for a column's type.
    const code = (err as { code?: string }).code;
    if (code === '42P01' || code === '3F000') return null;
    if (code === '42883' && kind === 'hashrecord' && t.hashRecord) return 'unhashable';
    throw err;
  }
}

/**
 * Refuses a server that cannot compute the chain's hash as the manifests record it: a big-endian one
 * (HASHTEXT_PROBE_SQL), one older than 11 (no hashtextextended) or, for `hashrecord`, than 14 (no
 * hash_record_extended; HASHRECORD_PROBE_SQL).
 */
async function requireRowHash(client: pg.Client, server: PgServer, kind: RowHashKind): Promise<void> {
  if (kind === 'md5') return;
  const record = kind === 'hashrecord';
  const ok = (await client.query<{ ok: boolean | null }>(record ? HASHRECORD_PROBE_SQL : HASHTEXT_PROBE_SQL)).rows[0]?.ok;
  if (ok === true) return;
  const why =
    ok === false
      ? 'hashes text differently from a little-endian server (it runs on a big-endian machine)'
      : record
        ? 'has no hash_record_extended (it is older than 14)'
        : 'has no hashtextextended (it is older than 11)';
  throw new PermafrostError(
    'server',
    `PostgreSQL at ${serverName(server)} ${why}, so it cannot check the table hashes of this snapshot; restore it on PostgreSQL ${record ? 14 : 12} or later on a little-endian machine (x86-64, ARM64).`,
  );
}

/**
 * Compares every table's exact count and content hash in the restored database with the manifest
 * (chain.tables, hashed as chain.rowHash says). With `jobs` > 1 the tables are hashed on that many
 * connections at once, the largest (by the manifest's count) first, so the check takes the cores a
 * restore has just used. A server that cannot compute the chain's hash (a big-endian machine for
 * `hashtext`) is refused in one sentence, exit 1: the copy cannot be checked there.
 */
export async function compareTableHashes(
  server: PgServer,
  database: string,
  chain: Pick<RestoreChain, 'tables' | 'rowHash'>,
  jobs = 1,
): Promise<CheckOutcome> {
  const { tables, rowHash } = chain;
  const found = tables.map((): { rows: number; hash: string } | null | 'unhashable' => null);
  const ready = new WeakSet<pg.Client>();
  const largestFirst = tables.map((t, i) => ({ t, i })).sort((a, b) => b.t.rows - a.t.rows);
  await onConnections(server, database, largestFirst, jobs, async (client, { t, i }) => {
    if (!ready.has(client)) {
      await client.query(HASH_SESSION_SQL);
      await requireRowHash(client, server, rowHash);
      ready.add(client);
    }
    found[i] = await restoredHash(client, t, rowHash);
  });
  const wrong: string[] = [];
  tables.forEach((t, i) => {
    const got = found[i];
    const name = qualified(t.schema, t.table);
    if (!got) wrong.push(`table ${name} is in the manifest (${t.rows} rows) but missing after restore`);
    else if (got === 'unhashable')
      wrong.push(
        `table ${name} is marked hashRecord in the manifest, but a column's type has no such hash (permafrost never marks such a table)`,
      );
    else if (got.rows !== t.rows || got.hash !== t.hash)
      wrong.push(`table ${name} has ${got.rows} rows with hash ${got.hash}, the manifest says ${t.rows} rows with hash ${t.hash}`);
  });
  return {
    name: 'table-hashes',
    ok: wrong.length === 0,
    detail: wrong.length === 0 ? `row counts and content hashes of all ${tables.length} tables equal the manifest` : wrong.join('; '),
  };
}
