import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { Config } from '../config/schema.js';
import { errorMessage, IntegrityError, PermafrostError, ToolError } from '../errors.js';
import { applyChain, compareTableHashes, readChain, type RestoreChain } from '../recover/chain.js';
import { decryptVerifiedPart, privateTemp, vaultTempBase, type DecryptSource, type PrivateTemp } from '../recover/decrypt.js';
import { defaultRestoreJobs, verifyRestoreArgv } from '../tools/postgres.js';
import {
  checkRdbFile,
  compareWithManifest,
  createScratch,
  dropScratch,
  readRestoredFacts,
  restoreIntoScratch,
  scratchName,
  verifyServer,
  type CheckOutcome,
  readArchiveToc,
  type ArchiveToc,
} from '../recover/verify.js';
import { recordVerify, recordVerifyRun } from '../recover/verify-state.js';
import type { DecryptSecret, SecretFlags } from '../crypto/keys-identity.js';
import type { JobSecrets } from '../config/secret-values.js';
import type { PgServer } from '../tools/postgres.js';
import { decryptSecretFor } from './secrets.js';
import type { Manifest, ManifestFile } from '../vault/manifest.js';
import { requireSignedManifest, trustedSigner, unpinnedRefusal, type SignerFlags, type SignerKey } from '../crypto/signature.js';
import { findSnapshot, listSnapshots, type SnapshotEntry } from '../vault/store.js';
import type { RunContext } from '../run-context.js';

export interface VerifyResult {
  snapshot: string;
  ok: boolean;
  /** The first failing check in one sentence, null when every check passed. */
  reason: string | null;
  checkedAt: string;
  durationMs: number;
  scratchDatabase: string;
  checks: CheckOutcome[];
}

const passed = (name: string, detail: string): CheckOutcome => ({ name, ok: true, detail });
const failed = (name: string, detail: string): CheckOutcome => ({ name, ok: false, detail });

/**
 * Test-restores a snapshot: decrypts every part (OpenPGP integrity and SHA-256 checked), lists the
 * archive, restores it into a scratch database that is always dropped, and compares the result
 * with the manifest. A snapshot that fails a check yields ok=false (and is recorded as failed);
 * a problem of this host (bad config, server down, wrong passphrase, temp folder full) is thrown and
 * marks no snapshot, but is recorded as the last run, which failed.
 */
export async function runVerify(config: Config, ctx: RunContext, secrets: JobSecrets, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const run = { t0: Date.now(), checkedAt: new Date().toISOString(), snapshot: null as string | null };
  try {
    return await verifyOnce(config, ctx, secrets, opts, run);
  } catch (err) {
    // Every run counts for permafrost_last_verify_success, also one that never reached a verdict;
    // a run stopped on purpose is not a failure. The error that ended the run matters more than recording it.
    if (!ctx.signal.aborted) {
      await recordVerifyRun(config.vault.dir, {
        ok: false,
        checkedAt: run.checkedAt,
        durationMs: Date.now() - run.t0,
        snapshot: run.snapshot,
        reason: errorMessage(err),
      }).catch(() => undefined);
    }
    throw err;
  }
}

interface VerifyOptions extends SecretFlags, SignerFlags {
  snapshot?: string;
}

/** A damaged part's sentence as a check's detail: without the snapshot prefix and the advice. */
function integrityDetail(err: IntegrityError): string {
  return err.message.replace(/^Snapshot \S+ failed its integrity check: /, '').replace(/; use another snapshot\.$/, '');
}

/** The chain's restore into the scratch database: as restore does it, without owners and grants (verifyRestoreArgv). */
async function restoreChainIntoScratch(
  server: PgServer,
  archive: string,
  chain: RestoreChain,
  source: Omit<DecryptSource, 'snapshot'>,
  jobs: number | undefined,
  run: RunContext,
): Promise<void> {
  const n = jobs ?? defaultRestoreJobs(availableParallelism());
  await applyChain(
    source,
    chain,
    {
      server,
      database: server.name,
      archive,
      restoreArgv: (section) => verifyRestoreArgv(server, server.name, archive, { section, jobs: section === 'post-data' ? n : 1 }),
      jobs: n,
    },
    run,
  );
}

/** What every step of one test-restore reads; no step changes it. */
interface VerifyContext {
  config: Config;
  opts: VerifyOptions;
  run: RunContext;
  snapshot: SnapshotEntry;
  manifest: Manifest;
  signer: SignerKey | null;
  secret: DecryptSecret;
  temp: PrivateTemp;
  server: PgServer;
}

/** What the database step produced for the later steps: the decrypted archive, and the chain when the snapshot is a delta. */
interface DatabaseProducts {
  archive: string;
  chain: RestoreChain | null;
}

/** runVerify's work; `run` tells the caller which snapshot it had chosen when it threw. */
async function verifyOnce(
  config: Config,
  ctx: RunContext,
  secrets: JobSecrets,
  opts: VerifyOptions,
  run: { t0: number; checkedAt: string; snapshot: string | null },
): Promise<VerifyResult> {
  const secret = await decryptSecretFor(config, opts, 'verify', secrets.vaultPassphrase);
  const snapshot = await findSnapshot(config.vault.dir, opts.snapshot);
  run.snapshot = snapshot.id;
  // A test-restore runs the snapshot's SQL on this server: a signed vault's manifests are checked first, as restore does.
  const { signer } = await trustedSigner(config.vault, snapshot, opts, 'verify');
  await requireSignedManifest(snapshot, signer);
  const server = verifyServer(config, scratchName(config), secrets);

  const temp = await privateTemp(vaultTempBase(config.vault.tempDir));
  let checks: CheckOutcome[];
  try {
    const manifest = snapshot.manifest;
    checks = manifest
      ? await runChecks({ config, opts, run: ctx, snapshot, manifest, signer, secret, temp, server })
      : [failed('manifest', snapshot.problem ?? `snapshot ${snapshot.id} has no readable manifest`)];
  } finally {
    await temp.dispose();
  }

  const result = judgeVerify(snapshot.id, server.name, checks, run.checkedAt, Date.now() - run.t0);
  await recordVerifyResult(config.vault.dir, result);
  return result;
}

/** The verdict from the checks, pure: the first failed check is the reason. */
function judgeVerify(
  snapshot: string,
  scratchDatabase: string,
  checks: CheckOutcome[],
  checkedAt: string,
  durationMs: number,
): VerifyResult {
  const failedCheck = checks.find((c) => !c.ok);
  return {
    snapshot,
    ok: failedCheck === undefined,
    reason: failedCheck ? failedCheck.detail : null,
    checkedAt,
    durationMs,
    scratchDatabase,
    checks,
  };
}

/** Records the verdict against its snapshot (the state file keeps only snapshots still in the vault). */
async function recordVerifyResult(vaultDir: string, result: VerifyResult): Promise<void> {
  const present = (await listSnapshots(vaultDir)).map((s) => s.id);
  await recordVerify(
    vaultDir,
    result.snapshot,
    { ok: result.ok, checkedAt: result.checkedAt, durationMs: result.durationMs, ...(result.reason ? { reason: result.reason } : {}) },
    present,
  );
}

/**
 * Appends a step's outcomes to `checks` up to and including its first failed one;
 * false when one failed, and the run stops there.
 */
function accept(checks: CheckOutcome[], outcomes: CheckOutcome[]): boolean {
  for (const outcome of outcomes) {
    checks.push(outcome);
    if (!outcome.ok) return false;
  }
  return true;
}

function stopIfAborted(ctx: VerifyContext): void {
  if (ctx.run.signal.aborted)
    throw new PermafrostError('stopped', `Verify of snapshot ${ctx.snapshot.id} was stopped before it finished; nothing was recorded.`);
}

/** The steps in order, each handed what the earlier ones produced; the outcomes up to and including the first failed one. */
async function runChecks(ctx: VerifyContext): Promise<CheckOutcome[]> {
  const checks: CheckOutcome[] = [];
  stopIfAborted(ctx);
  const database = await decryptDatabase(ctx);
  if (!accept(checks, database.outcomes)) return checks;
  stopIfAborted(ctx);
  const listed = await listArchive(ctx, database.archive);
  if (!accept(checks, listed.outcomes)) return checks;
  stopIfAborted(ctx);
  if (!accept(checks, await inScratch(ctx, database, listed.toc))) return checks;
  for (const file of ctx.manifest.files) {
    if (!isOtherPart(file)) continue;
    stopIfAborted(ctx);
    if (!accept(checks, await checkOtherPart(ctx, file))) return checks;
  }
  return checks;
}

/** Decrypts one part into the temp folder; a damaged part is a failed check, anything else a host problem. */
async function decryptPart(
  ctx: VerifyContext,
  file: ManifestFile,
  from: SnapshotEntry = ctx.snapshot,
): Promise<{ outcome: CheckOutcome; out: string | null }> {
  const name = `decrypt-${file.part}`;
  const what = `decrypt ${file.part}`;
  ctx.run.events.phase?.(what);
  try {
    const out = await decryptVerifiedPart(
      { snapshot: from, restoring: ctx.snapshot, secret: ctx.secret, temp: ctx.temp },
      file,
      ctx.run,
      what,
      // A full snapshot's archive: its data offsets written in, for the scratch restore's pg_restore -j.
      { indexArchive: file.part === 'database' },
    );
    return { outcome: passed(name, `${file.name}: OpenPGP integrity and SHA-256 match the manifest`), out };
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    return { outcome: failed(name, integrityDetail(err)), out: null };
  }
}

/** The database part decrypted: the snapshot's own, or for a delta the chain checked and its base's schema part. */
async function decryptDatabase(ctx: VerifyContext): Promise<DatabaseProducts & { outcomes: CheckOutcome[] }> {
  const { config, opts, snapshot, manifest, signer } = ctx;
  if (manifest.chain) {
    const read = await readChain(config.vault.dir, snapshot, signer, ctx.run);
    if ('problem' in read) return { outcomes: [failed('chain', read.problem)], archive: '', chain: null };
    // A link that names its signer belongs to a signed vault, even when every signature was removed.
    const signedLink = signer || opts.insecureNoSignatureCheck ? undefined : read.chain.links.find((l) => l.manifest?.signedBy);
    if (signedLink)
      throw unpinnedRefusal('verify', `snapshot ${signedLink.id}'s manifest says it was signed by ${signedLink.manifest!.signedBy!}`);
    const chain = read.chain;
    const base = chain.links[0]!;
    const d = await decryptPart(ctx, chain.schema, base);
    const n = chain.links.length;
    const links = n === 1 ? 'a base' : `${n - 1} delta${n > 2 ? 's' : ''} on base ${base.id}`;
    return {
      outcomes: [passed('chain', `${links}: every file's size and SHA-256 match the manifests`), d.outcome],
      archive: d.out ?? '',
      chain,
    };
  }
  const file = manifest.files.find((f) => f.part === 'database');
  if (!file) return { outcomes: [failed('decrypt-database', 'the manifest lists no database part')], archive: '', chain: null };
  const d = await decryptPart(ctx, file);
  return { outcomes: [d.outcome], archive: d.out ?? '', chain: null };
}

/** pg_restore --list of the archive: its table list for the comparison after the restore. */
async function listArchive(ctx: VerifyContext, archive: string): Promise<{ outcomes: CheckOutcome[]; toc: ArchiveToc | null }> {
  ctx.run.events.phase?.('list archive');
  let toc: ArchiveToc;
  try {
    toc = await readArchiveToc(ctx.server, archive);
  } catch (err) {
    return { outcomes: [failed('archive', errorMessage(err))], toc: null };
  }
  return { outcomes: [passed('archive', `pg_restore --list reads the archive (${toc.tables} tables)`)], toc };
}

/** The scratch database lives only through restore and compare; it is dropped whatever they found. */
async function inScratch(ctx: VerifyContext, database: DatabaseProducts, toc: ArchiveToc | null): Promise<CheckOutcome[]> {
  const { run, server } = ctx;
  run.events.phase?.('restore');
  await createScratch(server);
  try {
    const checks: CheckOutcome[] = [];
    stopIfAborted(ctx);
    if (!accept(checks, await restoreStep(ctx, database))) return checks;
    stopIfAborted(ctx);
    accept(checks, await compareStep(ctx, toc, database.chain));
    return checks;
  } finally {
    run.events.phase?.('drop scratch database');
    await dropScratch(server).catch((err: unknown) => {
      throw new ToolError(
        `Could not drop the scratch database "${server.name}" after verifying: drop it by hand (DROP DATABASE "${server.name}").`,
        { argv: ['DROP DATABASE', server.name], exitStatus: null, stderr: errorMessage(err), cause: err },
      );
    });
  }
}

/** The archive (or the chain) restored into the scratch database; a tool failure or a damaged part is a failed check. */
async function restoreStep(ctx: VerifyContext, { archive, chain }: DatabaseProducts): Promise<CheckOutcome[]> {
  const { config, run, server } = ctx;
  try {
    if (chain) await restoreChainIntoScratch(server, archive, chain, { secret: ctx.secret, temp: ctx.temp }, config.verify?.jobs, run);
    else await restoreIntoScratch(server, archive, config.verify?.jobs, run);
  } catch (err) {
    // Stopped on purpose (daemon shutdown): not the snapshot's fault, nothing is recorded.
    stopIfAborted(ctx);
    if (err instanceof ToolError) return [failed('restore', `${err.message} (into scratch database "${server.name}")`)];
    // A part of the chain that turned out damaged while it streamed into psql.
    if (err instanceof IntegrityError) return [failed('restore', integrityDetail(err))];
    throw err;
  }
  await rm(archive, { force: true });
  return [passed('restore', `restored into scratch database "${server.name}"`)];
}

/** The restored database compared with the manifest (and, for a chain, each table's hash). */
async function compareStep(ctx: VerifyContext, toc: ArchiveToc | null, chain: RestoreChain | null): Promise<CheckOutcome[]> {
  const { server } = ctx;
  ctx.run.events.phase?.('check');
  const checks = compareWithManifest(ctx.manifest, toc, await readRestoredFacts(server));
  if (chain) checks.push(await compareTableHashes(server, server.name, chain));
  return checks;
}

// The roles part is SQL, the secrets part a .env file: decrypting and matching the manifest is the check.
const isOtherPart = (file: ManifestFile): boolean => file.part === 'redis' || file.part === 'secrets' || file.part === 'roles';

/** A part beside the database: decrypted and matched with the manifest; the Redis snapshot also read as an RDB file. */
async function checkOtherPart(ctx: VerifyContext, file: ManifestFile): Promise<CheckOutcome[]> {
  const d = await decryptPart(ctx, file);
  if (d.out === null) return [d.outcome];
  if (file.part !== 'redis') {
    await rm(d.out, { force: true });
    return [d.outcome];
  }
  const rdb = await checkRdbFile(d.out);
  await rm(d.out, { force: true });
  return [d.outcome, rdb];
}
