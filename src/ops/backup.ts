import { hostname } from 'node:os';
import { formatBytes } from '../format.js';
import { backupStopped, beginCaptureSession, type OpenSession, type SessionFacts } from '../capture/postgres.js';
import { dumpCompression, pgDumpArgv, pgEnv, toolVersion, pgBin } from '../tools/postgres.js';
import type { SourceConfig } from '../config/schema.js';
import { errorMessage, PermafrostError } from '../errors.js';
import { cleanStaleStates } from '../capture/delta-state.js';
import type { ChainCapture } from './backup-delta.js';
import { acquireLock, type RunLock } from '../vault/lock.js';
import { VERSION } from '../version.js';
import { loadEncryptionKeys, type EncryptionKeys } from '../crypto/keys.js';
import { readSigningKey, signDetached, type SigningKey } from '../crypto/signature.js';
import type { Manifest, ManifestFile } from '../vault/manifest.js';
import {
  cleanStalePartials,
  commitPartial,
  createPartial,
  discardPartial,
  newestSnapshotSize,
  snapshotIdFor,
  vaultWriteError,
} from '../vault/store.js';
import { writeEncryptedCapture } from '../crypto/write-capture.js';
import type { PruneResult } from './prune.js';
import { captureExtraParts, type ExtraParts } from './backup-parts.js';
import { alsoStoppedBy, type RunContext } from '../run-context.js';
import { diskSpace } from '../vault/fs-durable.js';
import type { JobSecrets } from '../config/secret-values.js';
import { withSourceSecrets, type SourceJob } from './secrets.js';

export interface BackupResult {
  manifest: Manifest;
  dir: string;
  /** Leftovers of dead runs that this run removed. */
  cleaned: string[];
  warnings: string[];
  /** What retention did after this snapshot (null without vault.keep, or when it failed: see warnings). */
  pruned?: PruneResult | null;
}

/**
 * Refuses to start when the vault's disk has less free space than the newest snapshot took: the
 * new one will be about as big, and a disk that fills mid-dump wastes the whole run.
 */
async function checkFreeSpace(vaultDir: string): Promise<void> {
  const newest = await newestSnapshotSize(vaultDir, { whole: true });
  if (!newest) return;
  const needed = newest.bytes;
  const { free } = await diskSpace(vaultDir);
  if (free < needed) {
    throw new PermafrostError(
      'space',
      `vault.dir ${vaultDir} has ${formatBytes(free)} free, but the newest snapshot (${newest.id}) took ${formatBytes(needed)}, so the next one would not fit; ` +
        'free some space (`permafrost prune`, or a bigger disk) and run the backup again.',
    );
  }
}

/** Renames the next delta state into place; a failure only costs the next snapshot a base. */
async function saveState(parts: ChainCapture, id: string): Promise<string | null> {
  try {
    await parts.commitState(id);
    return null;
  } catch (err) {
    await parts.discardState().catch(() => undefined);
    return `the delta state could not be saved (${errorMessage(err)}), so the next snapshot will be a base`;
  }
}

/** A run that took over a stale lock says so: a run died there before. */
function lockWarning(lock: RunLock): string[] {
  return lock.tookOverFrom === null
    ? []
    : [`took over the run lock left by pid ${lock.tookOverFrom}, which no longer runs (a run died there before)`];
}

/** Captures the database into one encrypted snapshot, atomically (a whole run with alerts: runs.ts). */
export async function runBackup(config: SourceConfig, ctx: RunContext, secrets: JobSecrets): Promise<BackupResult> {
  const keys = await loadEncryptionKeys(config.vault, secrets.vaultPassphrase);
  const signing = config.vault.signingKeyFile === undefined ? null : await readSigningKey(config.vault.signingKeyFile);
  try {
    await checkFreeSpace(config.vault.dir);
    return await captureSnapshot(withSourceSecrets(config, secrets), { keys, signing }, ctx);
  } catch (err) {
    // A full or read-only vault disk shows up as ENOSPC/EROFS anywhere (lock, dump, manifest, rename).
    throw vaultWriteError(config.vault.dir, err) ?? err;
  }
}

async function captureSnapshot(
  config: SourceJob,
  { keys, signing }: { keys: EncryptionKeys; signing: SigningKey | null },
  ctx: RunContext,
): Promise<BackupResult> {
  const db = config.database;
  const lock = acquireLock(config.vault.dir, 'backup');
  try {
    const cleaned = await cleanStalePartials(config.vault.dir);
    await cleanStaleStates(config.vault.dir);
    const started = new Date();
    const partial = await createPartial(config.vault.dir, snapshotIdFor(started));
    // Redis and secrets are captured beside the database, not after it (see backup-parts.ts), and
    // start before the capture session opens: they need nothing from it, and Redis's
    // repl-diskless-sync-delay then runs while the session opens. The roles part follows the
    // session (its SQL is read there). A failed database stops them, and the folder is removed
    // only once they have let go of it.
    const rolesSql = deferred<string>();
    const extraParts = startExtraParts(config, { dir: partial.dir, keys, rolesSql: rolesSql.promise }, ctx);
    let session: OpenSession;
    let pgDumpVersion: string;
    try {
      // pg_dump's version is asked while the session opens: neither needs the other.
      [pgDumpVersion, session] = await bothOrClose(toolVersion(pgBin(db, 'pg_dump')), beginCaptureSession(db, ctx));
    } catch (err) {
      rolesSql.reject(err);
      await extraParts.stop();
      await discardPartial(partial);
      throw err;
    }
    const closeSession = closeOnce(session);
    let chainParts: ChainCapture | null = null;
    try {
      ctx.events.phase?.('database');
      const captured = await captureDatabase(config, session, { dir: partial.dir, keys, rolesSql, started }, ctx);
      chainParts = captured.chainParts;
      const { facts, dbFiles } = captured;
      await closeSession();
      ctx.events.phase?.('redis and secrets');
      const extra = await extraParts.result;
      if (ctx.signal.aborted) throw backupStopped();
      ctx.events.phase?.('commit');
      const manifest = snapshotManifest(config, {
        started,
        pgDumpVersion,
        facts,
        files: [...dbFiles, ...extra.files],
        extra,
        signing,
        chainParts,
      });
      const id = await commitPartial(partial, manifest, signing ? (bytes) => signDetached(bytes, signing) : undefined);
      const after = await afterCommit(config, { ...manifest, id }, signing, chainParts, ctx);
      return {
        manifest: { ...manifest, id },
        dir: `${config.vault.dir}/${id}`,
        cleaned,
        warnings: [...lockWarning(lock), ...(chainParts?.warnings ?? []), ...after.beforeExtra, ...extra.warnings, ...after.afterExtra],
        pruned: after.pruned,
      };
    } catch (err) {
      rolesSql.reject(err);
      await extraParts.stop();
      await discardPartial(partial);
      await chainParts?.discardState();
      // Stopped on purpose: the one sentence, whichever step noticed first (pg_dump killed, a query cancelled).
      throw ctx.signal.aborted && !(err instanceof PermafrostError && err.kind === 'stopped') ? backupStopped(err) : err;
    } finally {
      await closeSession();
    }
  } finally {
    lock.release();
  }
}

/**
 * The database part: in delta mode the schema, rows or what changed, read in the session's own
 * transaction; else pg_dump of the session's snapshot while its facts are read beside it.
 */
async function captureDatabase(
  config: SourceJob,
  session: OpenSession,
  part: { dir: string; keys: EncryptionKeys; rolesSql: ReturnType<typeof deferred<string>>; started: Date },
  ctx: RunContext,
): Promise<{ facts: SessionFacts; dbFiles: ManifestFile[]; chainParts: ChainCapture | null }> {
  const { dir, keys, rolesSql, started } = part;
  if (!config.database.delta) {
    const dumped = await dumpBesideFacts(config, session, { dir, keys, rolesSql }, ctx);
    return { facts: dumped.facts, dbFiles: [dumped.file], chainParts: null };
  }
  const facts = await session.readFacts();
  rolesSql.resolve(facts.rolesSql);
  const { captureChainParts } = await import('./backup-delta.js');
  const chainParts = await captureChainParts(config, { ...session, ...facts }, { dir, id: snapshotIdFor(started), keys, started }, ctx);
  return { facts, dbFiles: chainParts.files, chainParts };
}

/**
 * The session only has to outlive pg_dump's import of its snapshot; an open repeatable-read
 * transaction holds back vacuum, so it ends as soon as the dump is done, not after the run.
 * Returns its close, which runs once however often it is called.
 */
function closeOnce(session: OpenSession): () => Promise<void> {
  let open = true;
  return async () => {
    if (!open) return;
    open = false;
    await session.close();
  };
}

/** Both values; when one fails, the session the other opened is closed before the failure is thrown. */
async function bothOrClose(version: Promise<string>, opening: Promise<OpenSession>): Promise<[string, OpenSession]> {
  const [v, s] = await Promise.allSettled([version, opening]);
  if (v.status === 'fulfilled' && s.status === 'fulfilled') return [v.value, s.value];
  if (s.status === 'fulfilled') await s.value.close();
  throw v.status === 'rejected' ? v.reason : (s as PromiseRejectedResult).reason;
}

/** A promise with its resolve and reject at hand. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (err: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The extra parts started beside the database; `stop` aborts them and waits until they have let go of the folder. */
function startExtraParts(
  config: SourceJob,
  parts: { dir: string; keys: EncryptionKeys; rolesSql: Promise<string> },
  ctx: RunContext,
): { result: Promise<ExtraParts>; stop: () => Promise<void> } {
  const partsStop = new AbortController();
  const result = captureExtraParts(config, parts, alsoStoppedBy(ctx, partsStop.signal));
  // Settled here too, so that a database failure never leaves a rejection unobserved.
  const settled = result.then(
    () => undefined,
    () => undefined,
  );
  return {
    result,
    stop: async () => {
      partsStop.abort();
      await settled;
    },
  };
}

/**
 * The full-mode database part, with the session's facts (row counts, tables, roles) read in the
 * session's transaction while pg_dump dumps its exported snapshot: both see the same rows, and the
 * counts no longer delay the dump's start. A failure of either stops the other; the session's own
 * failure (the server went away) is the one reported, as it says the most.
 */
async function dumpBesideFacts(
  config: SourceJob,
  session: OpenSession,
  parts: { dir: string; keys: EncryptionKeys; rolesSql: ReturnType<typeof deferred<string>> },
  ctx: RunContext,
): Promise<{ file: ManifestFile; facts: SessionFacts }> {
  const dumpStop = new AbortController();
  let dumpFailed = false;
  const dump = dumpDatabase(config, session.snapshot, parts.dir, parts.keys, alsoStoppedBy(ctx, dumpStop.signal)).catch(
    async (err: unknown) => {
      dumpFailed = true;
      await session.cancel();
      throw err;
    },
  );
  const facts = session.readFacts().then(
    (f) => {
      parts.rolesSql.resolve(f.rolesSql);
      return f;
    },
    (err: unknown) => {
      dumpStop.abort();
      throw err;
    },
  );
  // pg_dump runs now: what the commit needs next loads meanwhile, on a main thread that mostly waits.
  afterCommitModules().catch(() => undefined);
  const [d, f] = await Promise.allSettled([dump, facts]);
  if (d.status === 'fulfilled' && f.status === 'fulfilled') return { file: d.value, facts: f.value };
  // The session's failure explains more (a restart ends both), unless it is only the cancel a failed dump sent.
  if (f.status === 'rejected' && !(dumpFailed && cancelledQuery(f.reason))) throw f.reason;
  // A dump that failed with the session still there failed on its own; the session may have been
  // idle when the server went away: ending its transaction tells.
  await session.end();
  throw (d as PromiseRejectedResult).reason;
}

/** Whether a session failure is PostgreSQL's "canceling statement due to user request" (SQLSTATE 57014). */
function cancelledQuery(err: unknown): boolean {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  return cause?.code === '57014';
}

/** The full-mode database part: pg_dump → (igzip →) OpenPGP → file; resolves once pg_dump exited 0 and the file is complete. */
async function dumpDatabase(
  config: SourceJob,
  snapshot: string,
  dir: string,
  keys: EncryptionKeys,
  ctx: RunContext,
): Promise<ManifestFile> {
  const db = config.database;
  const argv = pgDumpArgv(db, { snapshot });
  return writeEncryptedCapture(
    {
      dir,
      part: 'database',
      keys,
      progress: (n) => ctx.events.bytes?.('database', n),
      encrypt: { compressLevel: dumpCompression(db.compression).openpgpLevel },
    },
    { argv, env: pgEnv(db), what: `database "${db.name}"`, signal: ctx.signal },
  );
}

/** The manifest of the snapshot about to be committed (finishedAt: now). */
function snapshotManifest(
  config: SourceConfig,
  r: {
    started: Date;
    pgDumpVersion: string;
    facts: SessionFacts;
    files: ManifestFile[];
    extra: ExtraParts;
    signing: SigningKey | null;
    chainParts: ChainCapture | null;
  },
): Manifest {
  const db = config.database;
  return {
    formatVersion: 1,
    id: snapshotIdFor(r.started),
    startedAt: r.started.toISOString(),
    finishedAt: new Date().toISOString(),
    tool: { name: 'permafrost', version: VERSION },
    host: hostname(),
    database: {
      name: db.name,
      serverVersion: r.facts.serverVersion,
      pgDumpVersion: r.pgDumpVersion,
      compression: dumpCompression(db.compression).label,
      ...r.facts.database,
    },
    mastodon: r.facts.facts,
    tables: r.facts.tables,
    files: r.files,
    ...(r.extra.failed.length > 0 ? { failed: r.extra.failed } : {}),
    ...(r.signing ? { signedBy: r.signing.fingerprint } : {}),
    rolePasswords: r.facts.rolePasswords,
    ...(r.chainParts ? { chain: r.chainParts.chain } : {}),
  };
}

let afterModules: Promise<AfterCommitSteps> | undefined;
interface AfterCommitSteps {
  writeRunbook: typeof import('../vault/runbook.js').writeRunbook;
  pruneAfterBackup: typeof import('./prune.js').pruneAfterBackup;
  requestSnapshotRescan: typeof import('../replicate/rescan.js').requestSnapshotRescan;
}

/**
 * The steps that follow a commit, loaded once: not before the dump (whose start they would delay,
 * ~0.1 CPU-s of imports on a busy machine) but while it runs (dumpBesideFacts), or at the commit.
 */
function afterCommitModules(): Promise<AfterCommitSteps> {
  afterModules ??= Promise.all([import('../vault/runbook.js'), import('./prune.js'), import('../replicate/rescan.js')]).then(
    ([runbook, prune, rescan]) => ({
      writeRunbook: runbook.writeRunbook,
      pruneAfterBackup: prune.pruneAfterBackup,
      requestSnapshotRescan: rescan.requestSnapshotRescan,
    }),
  );
  return afterModules;
}

/**
 * What follows a committed snapshot; the snapshot is safe already, so trouble in any of it is only a
 * warning (those before the extra parts' warnings, and those after, in the order the result lists them).
 */
async function afterCommit(
  config: SourceJob,
  manifest: Manifest,
  signing: SigningKey | null,
  chainParts: ChainCapture | null,
  ctx: RunContext,
): Promise<{ beforeExtra: string[]; afterExtra: string[]; pruned: PruneResult | null }> {
  // The state follows its snapshot; when it cannot be saved the next snapshot is a base.
  const { writeRunbook, pruneAfterBackup, requestSnapshotRescan } = await afterCommitModules();
  const stateWarning = chainParts ? await saveState(chainParts, manifest.id) : null;
  // The runbook beside the data.
  const runbook = await writeRunbook(config, manifest, signing?.key.toPublic().armor());
  // Retention runs only after a good snapshot, under this run's lock.
  const prune = await pruneAfterBackup(config);
  // Start replication now rather than at Syncthing's next rescan.
  const replication = await requestSnapshotRescan(config, config.secretValues.syncthing);
  // The offsite copy, under this run's lock; loaded only when configured (the S3 SDK is large). A failed push is a warning: the snapshot is safe here.
  const offsite = config.offsite ? await (await import('./offsite.js')).pushAfterBackup(config, ctx) : [];
  return {
    beforeExtra: [...(stateWarning ? [stateWarning] : []), ...(runbook ? [runbook] : [])],
    afterExtra: [...prune.warnings, ...(replication ? [replication] : []), ...offsite],
    pruned: prune.result,
  };
}
