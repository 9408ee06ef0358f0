/**
 * The database parts of a delta-mode snapshot (database.delta): decides base or delta, writes the
 * parts into the partial snapshot folder, and hands back the chain for the manifest and the next
 * state to rename in once the snapshot is committed.
 *
 * A delta is made only when everything it rests on holds: the state describes the vault's newest
 * snapshot, that snapshot and its chain back to the base are there with their files, the schema
 * (plain DDL dump) and newest migration are the same, the chain is shorter than MAX_CHAIN_DEPTH,
 * the base is younger than fullEvery, and the state's counts and hashes are the reference's. Else a
 * base, with a warning when something was wrong rather than merely due.
 */
import { rm, stat, writeFile } from 'node:fs/promises';
import type pg from 'pg';
import path from 'node:path';
import { Readable } from 'node:stream';
import { backupStopped, cancelBackend, joinSnapshot, type CaptureSession } from '../capture/postgres.js';
import {
  baseHashes,
  baseRowsScript,
  catalogMismatch,
  deltaRows,
  prepareSession,
  readCatalog,
  ddlFingerprint,
  sequencesPart,
  type Catalog,
  type TableOutcome,
} from '../capture/delta.js';
import { dropDeltaState, loadDeltaState, NextState, StateMismatchError, type DeltaState } from '../capture/delta-state.js';
import { qualified, rowHashOf } from '../capture/delta-sql.js';

import { formatAge } from '../format.js';
import { dumpCompression, pgBin, pgConnArgs, pgDumpArgv, pgEnv, serverName } from '../tools/postgres.js';
import { errorMessage, PermafrostError, UserError } from '../errors.js';
import { startTool } from '../tools/run.js';
import type { EncryptionKeys } from '../crypto/keys.js';
import { chainProblem as chainLinkProblem, type LinkState } from '../vault/check.js';
import { MAX_CHAIN_DEPTH, PART_FILE, type Chain, type Manifest, type ManifestFile } from '../vault/manifest.js';
import { listSnapshots, snapshotIdTime, vaultWriteCode, type SnapshotEntry } from '../vault/store.js';
import { openVault } from '../vault/layout.js';
import { writeEncryptedCapture, writeEncryptedStream } from '../crypto/write-capture.js';
import type { RunContext } from '../run-context.js';
import type { SourceJob } from './secrets.js';

export interface ChainCapture {
  files: ManifestFile[];
  chain: Chain;
  warnings: string[];
  /** Renames the next state into place, for the snapshot committed as `id`. */
  commitState(id: string): Promise<void>;
  discardState(): Promise<void>;
}

interface Reference {
  snapshot: SnapshotEntry & { manifest: NonNullable<SnapshotEntry['manifest']> };
  chain: Chain;
  state: { state: DeltaState; dir: string; key: Buffer };
}

interface ServerFacts {
  /** The session's snapshot xmin and xmax (64-bit txids). */
  xmin: string;
  xmax: string;
  server: DeltaState['server'];
}

/** A WAL position `X/Y` as a number. */
function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi ?? '0'}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
}

/** Transactions since the reference beyond which a 32-bit xmin could be misread (2^31, with room). */
const MAX_XID_DISTANCE = 2n ** 31n - 10n ** 8n;

/** The snapshot's transaction horizon and the server's identity, read in the capture session. */
async function serverFacts(client: pg.Client): Promise<ServerFacts> {
  const r = await client.query<{
    xmin: string;
    xmax: string;
    dboid: string;
    sysid: string | null;
    lsn: string | null;
    timeline: string | null;
  }>(
    `SELECT txid_snapshot_xmin(txid_current_snapshot())::text AS xmin, txid_snapshot_xmax(txid_current_snapshot())::text AS xmax,
            (SELECT oid::text FROM pg_catalog.pg_database WHERE datname = current_database()) AS dboid,
            CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
                 THEN (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) END AS sysid,
            CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text AS lsn,
            CASE WHEN NOT pg_is_in_recovery()
                 THEN (('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint)::text
                 WHEN has_function_privilege('pg_catalog.pg_control_checkpoint()', 'EXECUTE')
                 THEN (SELECT timeline_id::text FROM pg_catalog.pg_control_checkpoint()) END AS timeline`,
  );
  const row = r.rows[0]!;
  return {
    xmin: row.xmin,
    xmax: row.xmax,
    server: { systemIdentifier: row.sysid, databaseOid: row.dboid, lsn: row.lsn, timeline: row.timeline },
  };
}

/** Whether a snapshot's files are all there at the sizes its manifest records (what a delta builds on must be). */
async function filesPresent(s: SnapshotEntry): Promise<boolean> {
  for (const f of s.manifest?.files ?? []) {
    const st = await stat(path.join(s.dir, f.name)).catch(() => null);
    if (!st || st.size !== f.bytes) return false;
  }
  return s.manifest !== null;
}

/**
 * Why the snapshot's chain (it, its reference, … its base) cannot be built on, or null: the walk is
 * check's (vault/check.ts chainProblem), each link judged here by its files' presence and sizes.
 */
async function chainProblem(snapshots: SnapshotEntry[], top: SnapshotEntry & { manifest: Manifest }): Promise<string | null> {
  if (!(await filesPresent(top))) return `a file of snapshot ${top.id} is missing or not the size its manifest records`;
  const links = new Map<string, LinkState>();
  for (const s of snapshots) {
    if (s.manifest?.chain?.base !== top.manifest.chain?.base) continue;
    links.set(s.id, { manifest: s.manifest, state: (await filesPresent(s)) ? 'ok' : 'damaged' });
  }
  const verdict = chainLinkProblem(top.manifest, (id) => links.get(id));
  return verdict && 'problem' in verdict ? `snapshot ${top.id} cannot be built on: ${verdict.problem}` : null;
}

/**
 * A failure while reading rows as one sentence: PostgreSQL's (a restart, a policy that hides rows)
 * is the server's, exit 1; ours, a full vault and a stop request pass through as they are.
 */
function captureError(config: SourceJob, err: unknown, signal: AbortSignal | undefined): unknown {
  if (err instanceof PermafrostError || vaultWriteCode(err)) return err;
  const db = config.database;
  if (signal?.aborted) return backupStopped(err);
  const msg = errorMessage(err);
  const fix = /row-level security/.test(msg)
    ? "back up as a role that bypasses row-level security (the tables' owner, or one with BYPASSRLS), as pg_dump needs too"
    : 'check the server is running and run backup again';
  return new PermafrostError(
    'server',
    `PostgreSQL at ${serverName(db)} failed while permafrost read the rows of database "${db.name}": ${msg}; ${fix}.`,
    { cause: err },
  );
}

/**
 * What delta mode does not capture and pg_dump does: large objects (their data is pg_dump's data
 * section, which a base's schema part leaves out) and the rows of extensions' configuration tables
 * (pg_extension_config_dump; the rows part reads no extension member). A database holding either
 * is refused in one sentence (exit 2), never backed up without them.
 */
async function refuseUncaptured(client: pg.Client, db: string): Promise<void> {
  const r = await client.query<{ lo: string; config: string | null }>(
    `SELECT (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)::text AS lo,
            (SELECT string_agg(format('%s.%s of extension %s', quote_ident(n.nspname), quote_ident(c.relname), e.extname), ', ' ORDER BY e.extname, n.nspname, c.relname)
             FROM pg_catalog.pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) AS cfg(oid)
             JOIN pg_catalog.pg_class c ON c.oid = cfg.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace) AS config`,
  );
  const { lo, config } = r.rows[0]!;
  const fix = 'remove database.delta from the config to back it up in full mode, which keeps them';
  if (lo !== '0') {
    throw new UserError(
      `Database "${db}" holds ${lo} large object${lo === '1' ? '' : 's'} (pg_largeobject), which delta mode does not capture; ${fix}.`,
    );
  }
  if (config) {
    throw new UserError(`Database "${db}" has extension configuration tables (${config}), whose rows delta mode does not capture; ${fix}.`);
  }
}

/** The reference to build a delta on, or why a base is made (and whether that deserves a warning). */
async function chooseReference(
  config: SourceJob,
  session: CaptureSession,
  ddl: string,
  catalog: Catalog,
  started: Date,
  facts: ServerFacts,
): Promise<{ ref: Reference } | { reason: string; warn: boolean }> {
  const vault = config.vault.dir;
  const loaded = await loadDeltaState(vault);
  const snapshots = await listSnapshots(vault);
  const newest = snapshots.find((s) => !s.future && s.manifest);
  if (!loaded.state) {
    if (loaded.problem) return { reason: loaded.problem, warn: true };
    // No state beside delta-mode snapshots: it was lost (or removed), not never made.
    if (newest?.manifest?.chain) return { reason: `its delta state ${openVault(vault).deltaStateDir()} is missing`, warn: true };
    return { reason: 'first snapshot in delta mode', warn: false };
  }
  if (newest?.manifest && !newest.manifest.chain)
    return { reason: `the newest snapshot ${newest.id} is a full one (delta mode was off)`, warn: false };
  if (!newest?.manifest || newest.id !== loaded.state.snapshot) {
    return {
      reason: `its delta state describes snapshot ${loaded.state.snapshot}, but the newest snapshot is ${newest?.id ?? 'none'}`,
      warn: true,
    };
  }
  const chain = newest.manifest.chain!;
  const broken = await chainProblem(snapshots, { ...newest, manifest: newest.manifest });
  if (broken) return { reason: broken, warn: true };
  const state = loaded.state;
  const moved = serverMoved(state, facts, newest.id);
  if (moved) return moved;
  if (state.rowHash !== catalog.rowHash)
    return { reason: `its delta state hashes rows by ${state.rowHash}, this server by ${catalog.rowHash}`, warn: false };
  const mismatch = catalogMismatch(catalog, state);
  if (chain.ddl !== ddl || mismatch)
    return { reason: `the schema changed since ${newest.id}${mismatch ? ` (${mismatch})` : ''}`, warn: false };
  const migration = session.facts?.schemaMigration ?? null;
  if (migration !== state.schemaMigration)
    return { reason: `schema_migrations changed since ${newest.id} (a Mastodon upgrade)`, warn: false };
  if (chain.depth + 1 > MAX_CHAIN_DEPTH) return { reason: `the chain of base ${chain.base} has ${MAX_CHAIN_DEPTH} deltas`, warn: false };
  const baseTime = snapshotIdTime(chain.base);
  const fullEvery = config.database.delta!.fullEvery;
  if (!baseTime || started.getTime() - baseTime.getTime() >= fullEvery * 1000) {
    return { reason: `base ${chain.base} is older than database.delta.fullEvery (${formatAge(fullEvery * 1000)})`, warn: false };
  }
  const agree =
    rowHashOf(chain) === state.rowHash &&
    chain.tables.length === state.tables.length &&
    chain.tables.every(
      (t, i) => state.tables[i]?.rows === t.rows && state.tables[i]?.hash === t.hash && state.tables[i]?.table === t.table,
    );
  if (!agree) return { reason: `its delta state does not match snapshot ${newest.id} (counts or hashes differ)`, warn: true };
  // A table's hash (by record or by text, hashrecord) is the base's for the whole chain: one that would change makes a base.
  const rehashed = catalog.tables.find((t, i) => (t.hashRecord === true) !== (chain.tables[i]?.hashRecord === true));
  if (rehashed)
    return { reason: `table ${qualified(rehashed.schema, rehashed.table)} would be hashed otherwise than in ${newest.id}`, warn: false };
  return { ref: { snapshot: { ...newest, manifest: newest.manifest }, chain, state: loaded } };
}

/** Why rows cannot be diffed by xmin against snapshot `id`'s state on this server (another server, a rollback, a new timeline, xid distance), else null. */
function serverMoved(state: DeltaState, facts: ServerFacts, id: string): { reason: string; warn: boolean } | null {
  // Rows are diffed by xmin: only against the same server and database, within 2^31 transactions.
  const sameServer =
    state.server.databaseOid === facts.server.databaseOid &&
    (state.server.systemIdentifier === null ||
      facts.server.systemIdentifier === null ||
      state.server.systemIdentifier === facts.server.systemIdentifier);
  if (!sameServer || BigInt(facts.xmax) < BigInt(state.xmin)) {
    return {
      reason: `the database is not the one snapshot ${id} was taken from (another server, or restored from a dump)`,
      warn: false,
    };
  }
  // A new timeline begins where a replica was promoted or a point-in-time recovery ended: rows the old
  // one wrote after that point are gone, and an xmin test cannot tell (keyed tables' witnesses might).
  if (state.server.timeline && facts.server.timeline && state.server.timeline !== facts.server.timeline) {
    return {
      reason: `the server is on timeline ${facts.server.timeline}, snapshot ${id} was taken on timeline ${state.server.timeline} (a promoted replica or a point-in-time recovery, whose history may have left the snapshot's)`,
      warn: true,
    };
  }
  if (state.server.lsn && facts.server.lsn && lsnValue(facts.server.lsn) < lsnValue(state.server.lsn)) {
    return {
      reason: `the server's WAL position went back since snapshot ${id} (the server was rolled back: a promoted replica, or a data directory restored from a copy)`,
      warn: true,
    };
  }
  if (BigInt(facts.xmax) - BigInt(state.xmin) > MAX_XID_DISTANCE) {
    return { reason: `over 2^31 transactions ran since snapshot ${id}`, warn: false };
  }
  return null;
}

/**
 * Writes the database parts of a delta-mode snapshot into `dir`: a base (schema + rows) or a delta,
 * read in the capture session's transaction. The session must stay open until this resolves.
 */
export async function captureChainParts(
  config: SourceJob,
  session: CaptureSession,
  opts: { dir: string; id: string; keys: EncryptionKeys; started: Date },
  ctx: RunContext,
): Promise<ChainCapture> {
  const { signal } = ctx;
  const onAbort = (): void => void cancelBackend(config.database, session.pid);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const partOpts: PartOptions = { ...opts, signal, events: ctx.events };
    const gathered = await gatherReference(config, session, partOpts);
    const { choice } = gathered;
    const delta = 'ref' in choice ? await writeDelta(config, session, gathered, choice.ref, partOpts) : null;
    const warnings =
      delta && 'mismatch' in delta
        ? [`made a base instead of a delta: ${delta.mismatch}; the state is rebuilt from this base`]
        : 'reason' in choice && choice.warn
          ? [`made a base instead of a delta: ${choice.reason}; the state is rebuilt from this base`]
          : [];
    const reason = 'reason' in choice ? choice.reason : (warnings[0] ?? 'its delta state did not match');
    const written = delta && !('mismatch' in delta) ? delta : await writeBase(config, session, gathered, reason, partOpts);
    return chainCapture(written, warnings, gathered, session.facts?.schemaMigration ?? null);
  } catch (err) {
    throw captureError(config, err, signal);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

type PartOptions = Parameters<typeof captureChainParts>[2] & { signal: AbortSignal; events: RunContext['events'] };

/** What the capture session reads before any part is written, and the reference chosen from it. */
interface Gathered {
  ddl: string;
  catalog: Catalog;
  facts: ServerFacts;
  choice: Awaited<ReturnType<typeof chooseReference>>;
}

/** The parts one step wrote, its tables' outcomes, the chain they form (tables aside) and the next state. */
interface Written {
  files: ManifestFile[];
  chain: Omit<Chain, 'tables'>;
  outcomes: TableOutcome[];
  next: NextState;
}

/** The schema's fingerprint (a plain DDL dump), the catalog and the server's facts, then the reference to build on. */
async function gatherReference(config: SourceJob, session: CaptureSession, opts: PartOptions): Promise<Gathered> {
  const db = config.database;
  await prepareSession(session.client);
  await refuseUncaptured(session.client, db.name);
  const plain = startTool({
    argv: pgDumpArgv(db, { snapshot: session.snapshot, schema: 'plain' }),
    env: pgEnv(db),
    doing: `reading the schema of database "${db.name}"`,
    signal: opts.signal,
  });
  // The catalog is read while pg_dump reads the schema.
  const schemaRead = Promise.all([ddlFingerprint(plain.stdout), plain.done]);
  const catalogRead = readCatalog(session.client).then(async (catalog) => ({ catalog, facts: await serverFacts(session.client) }));
  const [[ddl], { catalog, facts }] = await Promise.all([schemaRead, catalogRead]);
  const choice = await chooseReference(config, session, ddl, catalog, opts.started, facts);
  return { ddl, catalog, facts, choice };
}

/** The rows part's compression level (igzip's, at least 1) and its byte count as progress. */
function rowsPartOptions(config: SourceJob, opts: PartOptions) {
  return {
    dir: opts.dir,
    keys: opts.keys,
    progress: (n: number): void => opts.events.bytes?.('database', n),
    encrypt: { compressLevel: dumpCompression(config.database.compression).openpgpLevel || 1 },
  };
}

/**
 * The delta part on `ref`; when the state turns out not to be the reference's, the part and the
 * state are dropped and the mismatch returned, so that a base is made instead.
 */
async function writeDelta(
  config: SourceJob,
  session: CaptureSession,
  g: Gathered,
  ref: Reference,
  opts: PartOptions,
): Promise<Written | { mismatch: string }> {
  const next = await NextState.create(config.vault.dir, ref.state.key);
  const outcomes: TableOutcome[] = [];
  try {
    const file = await writeEncryptedStream(
      { ...rowsPartOptions(config, opts), part: 'delta' },
      Readable.from(deltaRows(session.client, g.catalog, ref.state, next, outcomes)),
      `the changed rows of database "${config.database.name}"`,
    );
    const chain = {
      kind: 'delta',
      base: ref.chain.base,
      reference: ref.snapshot.id,
      depth: ref.chain.depth + 1,
      ddl: g.ddl,
      rowHash: g.catalog.rowHash,
    } as const;
    return { files: [file], chain, outcomes, next };
  } catch (err) {
    if (!(err instanceof StateMismatchError)) {
      await next.discard();
      throw err;
    }
    await rm(path.join(opts.dir, PART_FILE.delta), { force: true });
    await next.discard();
    await dropDeltaState(config.vault.dir);
    return { mismatch: err.message };
  }
}

/** A base: the schema (pg_dump's custom format, in the session's snapshot) and every table's rows, with a new state. */
async function writeBase(config: SourceJob, session: CaptureSession, g: Gathered, reason: string, opts: PartOptions): Promise<Written> {
  const db = config.database;
  const next = await NextState.create(config.vault.dir, null);
  const outcomes: TableOutcome[] = [];
  let hasher: Awaited<ReturnType<typeof joinSnapshot>> | null = null;
  try {
    // The rows' hashes are read on a second session in the same snapshot, beside the rows.
    hasher = await joinSnapshot(db, session.snapshot, { signal: opts.signal });
    await prepareSession(hasher.client);
    // The rows are written by psql in the same snapshot (no byte through this process), from a script in the next state's folder.
    const script = path.join(next.dir, 'rows.psql');
    await writeFile(script, baseRowsScript(g.catalog, session.snapshot, await sequencesPart(session.client, g.catalog)), { mode: 0o600 });
    // Settled as soon as it ends (a failure is taken up below, after the parts have settled).
    const hashes = Promise.allSettled([baseHashes(hasher.client, g.catalog, next, outcomes)]);
    // The schema part is dumped while the rows are read; all settle before anything fails, so no
    // writer is left in the folder a failure removes.
    const [schemaDone, rowsDone] = await Promise.allSettled([
      writeEncryptedCapture(
        { dir: opts.dir, part: 'schema', keys: opts.keys, encrypt: { compressLevel: dumpCompression(db.compression).openpgpLevel } },
        {
          argv: pgDumpArgv(db, { snapshot: session.snapshot, schema: 'custom' }),
          env: pgEnv(db),
          what: `the schema of database "${db.name}"`,
          signal: opts.signal,
        },
      ),
      writeEncryptedCapture(
        { ...rowsPartOptions(config, opts), part: 'rows' },
        {
          argv: [
            pgBin(db, 'psql'),
            '--no-psqlrc',
            '--quiet',
            '--no-align',
            '--tuples-only',
            '--set=ON_ERROR_STOP=1',
            '--no-password',
            ...pgConnArgs(db),
            '--dbname',
            db.name,
            '--file',
            script,
          ],
          env: { ...pgEnv(db), PGCLIENTENCODING: 'UTF8' },
          what: `the rows of database "${db.name}"`,
          signal: opts.signal,
        },
      ),
    ]);
    // Either failed: the hashes are not needed, their query is ended with their session.
    if (schemaDone.status === 'rejected' || rowsDone.status === 'rejected') await hasher.close();
    const [hashesDone] = await hashes;
    // The rows' failure first: one that ends the capture session's transaction (a row-level
    // security policy, say) makes pg_dump fail too, merely unable to import its snapshot.
    if (rowsDone.status === 'rejected') throw rowsDone.reason;
    if (schemaDone.status === 'rejected') throw schemaDone.reason;
    if (hashesDone.status === 'rejected') throw hashesDone.reason;
    const [schema, rows] = [schemaDone.value, rowsDone.value];
    await rm(script);
    return {
      files: [schema, rows],
      chain: { kind: 'base', base: opts.id, reference: null, depth: 0, ddl: g.ddl, reason, rowHash: g.catalog.rowHash },
      outcomes,
      next,
    };
  } catch (err) {
    await next.discard();
    throw err;
  } finally {
    await hasher?.close();
  }
}

/** The parts and chain for the manifest, and the next state to rename in once the snapshot is committed as `id`. */
function chainCapture(written: Written, warnings: string[], g: Gathered, migration: string | null): ChainCapture {
  const { chain, next, outcomes } = written;
  return {
    files: written.files,
    chain: { ...chain, tables: outcomes.map((o) => o.manifest) },
    warnings,
    async commitState(id) {
      await next.commit({
        snapshot: id,
        base: chain.kind === 'base' ? id : chain.base,
        depth: chain.depth,
        ddl: g.ddl,
        schemaMigration: migration,
        xmin: g.facts.xmin,
        server: g.facts.server,
        rowHash: g.catalog.rowHash,
        tables: outcomes.map((o) => o.state),
      });
    },
    discardState: () => next.discard(),
  };
}
