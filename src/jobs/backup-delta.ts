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
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { cancelBackend, type CaptureSession } from '../capture/postgres.js';
import {
  baseRows,
  catalogMismatch,
  deltaRows,
  prepareSession,
  readCatalog,
  ddlFingerprint,
  StateMismatchError,
  type Catalog,
  type TableOutcome,
} from '../capture/delta.js';
import { dropDeltaState, loadDeltaState, NextState, STATE_DIR, type DeltaState } from '../capture/delta-state.js';
import type { SourceConfig } from '../config/schema.js';
import { formatAge } from '../format.js';
import { dumpCompression, pgDumpArgv, pgEnv } from '../tools/postgres.js';
import { startTool } from '../tools/run.js';
import type { EncryptionKeys } from '../vault/keys.js';
import { MAX_CHAIN_DEPTH, PART_FILE, type Chain, type ManifestFile } from '../vault/manifest.js';
import { listSnapshots, snapshotIdTime, type SnapshotEntry } from '../vault/store.js';
import { writeEncryptedCapture } from '../vault/write-capture.js';
import { writeEncryptedPart } from '../vault/write-part.js';
import type { JobEvents } from './events.js';

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

/** Why the snapshot's chain (it, its reference, … its base) cannot be built on, or null. */
async function chainProblem(snapshots: SnapshotEntry[], top: SnapshotEntry): Promise<string | null> {
  const byId = new Map(snapshots.map((s) => [s.id, s]));
  let s: SnapshotEntry | undefined = top;
  for (let depth = top.manifest?.chain?.depth ?? 0; s; depth--) {
    const chain = s.manifest?.chain;
    if (!s.manifest || !chain || chain.depth !== depth || chain.base !== top.manifest?.chain?.base)
      return `snapshot ${s.id} of its chain is damaged`;
    for (const f of s.manifest.files) {
      const st = await stat(path.join(s.dir, f.name)).catch(() => null);
      if (!st || st.size !== f.bytes) return `${f.name} of snapshot ${s.id} (in its chain) is missing or not the size its manifest records`;
    }
    if (chain.reference === null) return null;
    const ref = chain.reference;
    s = byId.get(ref);
    if (!s) return `snapshot ${ref}, which its chain needs, is missing`;
  }
  return null;
}

/** The reference to build a delta on, or why a base is made (and whether that deserves a warning). */
async function chooseReference(
  config: SourceConfig,
  session: CaptureSession,
  ddl: string,
  catalog: Catalog,
  started: Date,
): Promise<{ ref: Reference } | { reason: string; warn: boolean }> {
  const vault = config.vault.dir;
  const loaded = await loadDeltaState(vault);
  const snapshots = await listSnapshots(vault);
  const newest = snapshots.find((s) => !s.future && s.manifest);
  if (!loaded.state) {
    if (loaded.problem) return { reason: loaded.problem, warn: true };
    // No state beside delta-mode snapshots: it was lost (or removed), not never made.
    if (newest?.manifest?.chain) return { reason: `its delta state ${path.join(vault, STATE_DIR)} is missing`, warn: true };
    return { reason: 'first snapshot in delta mode', warn: false };
  }
  if (!newest?.manifest || newest.id !== loaded.state.snapshot) {
    return {
      reason: `its delta state describes snapshot ${loaded.state.snapshot}, but the newest snapshot is ${newest?.id ?? 'none'}`,
      warn: true,
    };
  }
  const chain = newest.manifest.chain;
  if (!chain) return { reason: `the newest snapshot ${newest.id} is a full one`, warn: true };
  const broken = await chainProblem(snapshots, newest);
  if (broken) return { reason: broken, warn: true };
  const state = loaded.state;
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
    chain.tables.length === state.tables.length &&
    chain.tables.every(
      (t, i) => state.tables[i]?.rows === t.rows && state.tables[i]?.hash === t.hash && state.tables[i]?.table === t.table,
    );
  if (!agree) return { reason: `its delta state does not match snapshot ${newest.id} (counts or hashes differ)`, warn: true };
  return { ref: { snapshot: { ...newest, manifest: newest.manifest }, chain, state: loaded } };
}

/**
 * Writes the database parts of a delta-mode snapshot into `dir`: a base (schema + rows) or a delta,
 * read in the capture session's transaction. The session must stay open until this resolves.
 */
export async function captureChainParts(
  config: SourceConfig,
  session: CaptureSession,
  opts: { dir: string; id: string; keys: EncryptionKeys; started: Date; signal?: AbortSignal; events?: JobEvents },
): Promise<ChainCapture> {
  const db = config.database;
  const env = pgEnv(db);
  const { dir, keys, signal } = opts;
  const onAbort = (): void => void cancelBackend(db, session.pid);
  signal?.addEventListener('abort', onAbort, { once: true });
  const compressLevel = dumpCompression(db.compression).openpgpLevel || 1;
  const progress = (n: number): void => opts.events?.bytes?.('database', n);
  let next: NextState | null = null;
  try {
    await prepareSession(session.client);
    const plain = startTool({
      argv: pgDumpArgv(db, { snapshot: session.snapshot, schema: 'plain' }),
      env,
      doing: `reading the schema of database "${db.name}"`,
      signal,
    });
    const [ddl] = await Promise.all([ddlFingerprint(plain.stdout), plain.done]);
    const catalog = await readCatalog(session.client);
    const choice = await chooseReference(config, session, ddl, catalog, opts.started);
    const warnings: string[] = [];
    const outcomes: TableOutcome[] = [];
    let files: ManifestFile[] | null = null;
    let chain: Omit<Chain, 'tables'> | null = null;

    if ('ref' in choice) {
      const { ref } = choice;
      next = await NextState.create(config.vault.dir, ref.state.key);
      try {
        files = [
          await writeEncryptedPart(
            { dir, part: 'delta', keys, progress, encrypt: { compressLevel } },
            Readable.from(deltaRows(session.client, catalog, ref.state, next, outcomes)),
          ),
        ];
        chain = { kind: 'delta', base: ref.chain.base, reference: ref.snapshot.id, depth: ref.chain.depth + 1, ddl };
      } catch (err) {
        if (!(err instanceof StateMismatchError)) throw err;
        await rm(path.join(dir, PART_FILE.delta), { force: true });
        await next.discard();
        await dropDeltaState(config.vault.dir);
        warnings.push(`made a base instead of a delta: ${err.message}; the state is rebuilt from this base`);
        outcomes.length = 0;
      }
    } else if (choice.warn) {
      warnings.push(`made a base instead of a delta: ${choice.reason}; the state is rebuilt from this base`);
    }

    if (!files || !chain) {
      next = await NextState.create(config.vault.dir, null);
      const schema = await writeEncryptedCapture(
        { dir, part: 'schema', keys, encrypt: { compressLevel: dumpCompression(db.compression).openpgpLevel } },
        {
          argv: pgDumpArgv(db, { snapshot: session.snapshot, schema: 'custom' }),
          env,
          what: `the schema of database "${db.name}"`,
          signal,
        },
      );
      const rows = await writeEncryptedPart(
        { dir, part: 'rows', keys, progress, encrypt: { compressLevel } },
        Readable.from(baseRows(session.client, catalog, next, outcomes)),
      );
      files = [schema, rows];
      const reason = 'reason' in choice ? choice.reason : (warnings[0] ?? 'its delta state did not match');
      chain = { kind: 'base', base: opts.id, reference: null, depth: 0, ddl, reason };
    }
    const done = chain;
    const nextState = next!;
    const migration = session.facts?.schemaMigration ?? null;
    return {
      files,
      chain: { ...done, tables: outcomes.map((o) => o.manifest) },
      warnings,
      async commitState(id) {
        await nextState.commit({
          formatVersion: 1,
          snapshot: id,
          base: done.kind === 'base' ? id : done.base,
          depth: done.depth,
          ddl,
          schemaMigration: migration,
          tables: outcomes.map((o) => o.state),
        });
      },
      discardState: () => nextState.discard(),
    };
  } catch (err) {
    await next?.discard();
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
