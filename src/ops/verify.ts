import { rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { Config, DatabaseConfig } from '../config/schema.js';
import { errorMessage, IntegrityError, PermafrostError, ToolError } from '../errors.js';
import { applyChain, compareTableHashes, readChain, type RestoreChain } from '../recover/chain.js';
import { decryptVerifiedPart, privateTemp, vaultTempBase, type DecryptSource } from '../recover/decrypt.js';
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
import { decryptSecretFor, type SecretFlags } from '../crypto/keys-identity.js';
import type { ManifestFile } from '../vault/manifest.js';
import { requireSignedManifest, trustedSigner, unpinnedRefusal, type SignerFlags } from '../crypto/signature.js';
import { findSnapshot, listSnapshots } from '../vault/store.js';
import type { JobEvents } from '../events.js';

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

/** One step of the test-restore: its outcomes in order (none when it only prepares); the run stops after the first failed one. */
type VerifyStep = () => Promise<CheckOutcome[]>;

const passed = (name: string, detail: string): CheckOutcome => ({ name, ok: true, detail });
const failed = (name: string, detail: string): CheckOutcome => ({ name, ok: false, detail });

/**
 * Test-restores a snapshot: decrypts every part (OpenPGP integrity and SHA-256 checked), lists the
 * archive, restores it into a scratch database that is always dropped, and compares the result
 * with the manifest. A snapshot that fails a check yields ok=false (and is recorded as failed);
 * a problem of this host (bad config, server down, wrong passphrase, temp folder full) is thrown and
 * marks no snapshot, but is recorded as the last run, which failed.
 */
export async function runVerify(config: Config, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const run = { t0: Date.now(), checkedAt: new Date().toISOString(), snapshot: null as string | null };
  try {
    return await verifyOnce(config, opts, run);
  } catch (err) {
    // Every run counts for permafrost_last_verify_success, also one that never reached a verdict;
    // a run stopped on purpose is not a failure. The error that ended the run matters more than recording it.
    if (!opts.signal?.aborted) {
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
  events?: JobEvents;
  signal?: AbortSignal;
}

/** A damaged part's sentence as a check's detail: without the snapshot prefix and the advice. */
function integrityDetail(err: IntegrityError): string {
  return err.message.replace(/^Snapshot \S+ failed its integrity check: /, '').replace(/; use another snapshot\.$/, '');
}

/** The chain's restore into the scratch database: as restore does it, without owners and grants (verifyRestoreArgv). */
async function restoreChainIntoScratch(
  server: DatabaseConfig,
  archive: string,
  chain: RestoreChain,
  source: Omit<DecryptSource, 'snapshot'>,
  jobs: number | undefined,
  opts: VerifyOptions,
): Promise<void> {
  const n = jobs ?? defaultRestoreJobs(availableParallelism());
  await applyChain(source, chain, {
    server,
    database: server.name,
    archive,
    restoreArgv: (section) => verifyRestoreArgv(server, server.name, archive, { section, jobs: section === 'post-data' ? n : 1 }),
    events: opts.events,
    signal: opts.signal,
  });
}

/** runVerify's work; `run` tells the caller which snapshot it had chosen when it threw. */
async function verifyOnce(
  config: Config,
  opts: VerifyOptions,
  run: { t0: number; checkedAt: string; snapshot: string | null },
): Promise<VerifyResult> {
  const { t0, checkedAt } = run;
  const secret = await decryptSecretFor(config, opts, 'verify');
  const snapshot = await findSnapshot(config.vault.dir, opts.snapshot);
  run.snapshot = snapshot.id;
  // A test-restore runs the snapshot's SQL on this server: a signed vault's manifests are checked first, as restore does.
  const { signer } = await trustedSigner(config.vault, snapshot, opts, 'verify');
  await requireSignedManifest(snapshot, signer);
  const server = verifyServer(config, scratchName(config));
  let checks: CheckOutcome[] = [];
  const stopIfAborted = (): void => {
    if (opts.signal?.aborted)
      throw new PermafrostError('stopped', `Verify of snapshot ${snapshot.id} was stopped before it finished; nothing was recorded.`);
  };
  /** Runs the steps in order; their outcomes up to and including the first failed one. */
  const runSteps = async (steps: VerifyStep[]): Promise<CheckOutcome[]> => {
    const outcomes: CheckOutcome[] = [];
    for (const step of steps) {
      stopIfAborted();
      for (const outcome of await step()) {
        outcomes.push(outcome);
        if (!outcome.ok) return outcomes;
      }
    }
    return outcomes;
  };

  const temp = await privateTemp(vaultTempBase(config.vault.tempDir));
  try {
    const manifest = snapshot.manifest;
    if (!manifest) {
      checks = [failed('manifest', snapshot.problem ?? `snapshot ${snapshot.id} has no readable manifest`)];
    } else {
      /** Decrypts one part into the temp folder; a damaged part is a failed check, anything else a host problem. */
      const decrypt = async (file: ManifestFile, from = snapshot): Promise<{ outcome: CheckOutcome; out: string | null }> => {
        const name = `decrypt-${file.part}`;
        const what = `decrypt ${file.part}`;
        opts.events?.phase?.(what);
        try {
          const out = await decryptVerifiedPart({ snapshot: from, restoring: snapshot, secret, temp }, file, {
            progress: (n) => opts.events?.bytes?.(what, n),
            signal: opts.signal,
          });
          return { outcome: passed(name, `${file.name}: OpenPGP integrity and SHA-256 match the manifest`), out };
        } catch (err) {
          if (!(err instanceof IntegrityError)) throw err;
          return { outcome: failed(name, integrityDetail(err)), out: null };
        }
      };

      // Each step hands what it produced (the archive, its table list) to the next through these.
      let archive = '';
      let toc: ArchiveToc | null = null;
      let chain: RestoreChain | null = null;
      const decryptDatabase: VerifyStep = async () => {
        if (manifest.chain) {
          const read = await readChain(config.vault.dir, snapshot, signer, opts.events);
          if ('problem' in read) return [failed('chain', read.problem)];
          // A link that names its signer belongs to a signed vault, even when every signature was removed.
          const signedLink = signer || opts.insecureNoSignatureCheck ? undefined : read.chain.links.find((l) => l.manifest?.signedBy);
          if (signedLink)
            throw unpinnedRefusal('verify', `snapshot ${signedLink.id}'s manifest says it was signed by ${signedLink.manifest!.signedBy!}`);
          chain = read.chain;
          const base = chain.links[0]!;
          const d = await decrypt(chain.schema, base);
          archive = d.out ?? '';
          const n = chain.links.length;
          return [
            passed(
              'chain',
              `${n === 1 ? 'a base' : `${n - 1} delta${n > 2 ? 's' : ''} on base ${base.id}`}: every file's size and SHA-256 match the manifests`,
            ),
            d.outcome,
          ];
        }
        const file = manifest.files.find((f) => f.part === 'database');
        if (!file) return [failed('decrypt-database', 'the manifest lists no database part')];
        const d = await decrypt(file);
        archive = d.out ?? '';
        return [d.outcome];
      };
      const listArchive: VerifyStep = async () => {
        opts.events?.phase?.('list archive');
        try {
          toc = await readArchiveToc(server, archive);
        } catch (err) {
          return [failed('archive', errorMessage(err))];
        }
        return [passed('archive', `pg_restore --list reads the archive (${toc.tables} tables)`)];
      };
      const restore: VerifyStep = async () => {
        try {
          if (chain) await restoreChainIntoScratch(server, archive, chain, { secret, temp }, config.verify?.jobs, opts);
          else await restoreIntoScratch(server, archive, config.verify?.jobs, opts.signal);
        } catch (err) {
          // Stopped on purpose (daemon shutdown): not the snapshot's fault, nothing is recorded.
          stopIfAborted();
          if (err instanceof ToolError) return [failed('restore', `${err.message} (into scratch database "${server.name}")`)];
          // A part of the chain that turned out damaged while it streamed into psql.
          if (err instanceof IntegrityError) return [failed('restore', integrityDetail(err))];
          throw err;
        }
        await rm(archive, { force: true });
        return [passed('restore', `restored into scratch database "${server.name}"`)];
      };
      const compare: VerifyStep = async () => {
        opts.events?.phase?.('check');
        const checks = compareWithManifest(manifest, toc, await readRestoredFacts(server));
        if (chain) checks.push(await compareTableHashes(server, server.name, chain.tables));
        return checks;
      };
      /** The scratch database lives only through restore and compare; it is dropped whatever they found. */
      const inScratch: VerifyStep = async () => {
        opts.events?.phase?.('restore');
        await createScratch(server);
        try {
          return await runSteps([restore, compare]);
        } finally {
          opts.events?.phase?.('drop scratch database');
          await dropScratch(server).catch((err: unknown) => {
            throw new ToolError(
              `Could not drop the scratch database "${server.name}" after verifying: drop it by hand (DROP DATABASE "${server.name}").`,
              { argv: ['DROP DATABASE', server.name], exitStatus: null, stderr: errorMessage(err), cause: err },
            );
          });
        }
      };
      const otherParts = manifest.files.flatMap((file): VerifyStep[] => {
        if (file.part === 'redis') {
          return [
            async () => {
              const d = await decrypt(file);
              if (d.out === null) return [d.outcome];
              const rdb = await checkRdbFile(d.out);
              await rm(d.out, { force: true });
              return [d.outcome, rdb];
            },
          ];
        }
        // The roles part is SQL, the secrets part a .env file: decrypting and matching the manifest is the check.
        if (file.part === 'secrets' || file.part === 'roles') {
          return [
            async () => {
              const d = await decrypt(file);
              if (d.out !== null) await rm(d.out, { force: true });
              return [d.outcome];
            },
          ];
        }
        return [];
      });
      checks = await runSteps([decryptDatabase, listArchive, inScratch, ...otherParts]);
    }
  } finally {
    await temp.dispose();
  }

  const failedCheck = checks.find((c) => !c.ok);
  const result: VerifyResult = {
    snapshot: snapshot.id,
    ok: failedCheck === undefined,
    reason: failedCheck ? failedCheck.detail : null,
    checkedAt,
    durationMs: Date.now() - t0,
    scratchDatabase: server.name,
    checks,
  };
  const present = (await listSnapshots(config.vault.dir)).map((s) => s.id);
  await recordVerify(
    config.vault.dir,
    snapshot.id,
    { ok: result.ok, checkedAt, durationMs: result.durationMs, ...(result.reason ? { reason: result.reason } : {}) },
    present,
  );
  return result;
}
