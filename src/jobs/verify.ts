import { rm } from 'node:fs/promises';
import { readPassphraseFile } from '../config/secret-file.js';
import type { Config } from '../config/schema.js';
import { errorMessage, IntegrityError, PermafrostError, ToolError } from '../errors.js';
import { decryptVerifiedPart, privateTemp } from '../recover/decrypt.js';
import {
  archiveTables,
  checkRdbFile,
  compareWithManifest,
  createScratch,
  dropScratch,
  readRestoredFacts,
  restoreIntoScratch,
  scratchName,
  verifyServer,
  type CheckOutcome,
} from '../recover/verify.js';
import { recordVerify } from '../recover/verify-state.js';
import type { ManifestFile } from '../vault/manifest.js';
import { findSnapshot, listSnapshots } from '../vault/store.js';

export interface VerifyEvents {
  /** A phase starts ("decrypt database", "restore", "check", …). */
  phase?(name: string): void;
  /** Plaintext bytes decrypted so far in the current phase ("decrypt database", …). */
  bytes?(phase: string, n: number): void;
}

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

/** Thrown inside the run to stop at the first failing check; never leaves this module. */
class CheckFailed extends Error {}

/**
 * Test-restores a snapshot: decrypts every part (OpenPGP integrity and SHA-256 checked), lists the
 * archive, restores it into a scratch database that is always dropped, and compares the result
 * with the manifest. A snapshot that fails a check yields ok=false (and is recorded as failed);
 * a problem of this host (bad config, server down, wrong passphrase) is thrown and not recorded.
 */
export async function runVerify(
  config: Config,
  opts: { snapshot?: string; events?: VerifyEvents; signal?: AbortSignal } = {},
): Promise<VerifyResult> {
  const t0 = Date.now();
  const checkedAt = new Date().toISOString();
  const passphrase = readPassphraseFile(config.vault.passphraseFile);
  const snapshot = await findSnapshot(config.vault.dir, opts.snapshot);
  const server = verifyServer(config, scratchName(config));
  const checks: CheckOutcome[] = [];
  const fail = (name: string, detail: string): never => {
    checks.push({ name, ok: false, detail });
    throw new CheckFailed(detail);
  };
  const stopIfAborted = (): void => {
    if (opts.signal?.aborted) throw new PermafrostError('tool', `Verify of snapshot ${snapshot.id} was stopped before it finished; nothing was recorded.`);
  };

  const temp = await privateTemp(config.vault.tempDir);
  try {
    const manifest = snapshot.manifest ?? fail('manifest', snapshot.problem ?? `snapshot ${snapshot.id} has no readable manifest`);
    const decrypt = async (file: ManifestFile): Promise<string> => {
      const what = `decrypt ${file.part}`;
      opts.events?.phase?.(what);
      try {
        const out = await decryptVerifiedPart({ snapshot, passphrase, temp }, file, { progress: (n) => opts.events?.bytes?.(what, n) });
        checks.push({ name: `decrypt-${file.part}`, ok: true, detail: `${file.name}: OpenPGP integrity and SHA-256 match the manifest` });
        return out;
      } catch (err) {
        if (err instanceof IntegrityError) return fail(`decrypt-${file.part}`, err.message.replace(/^Snapshot \S+ failed its integrity check: /, '').replace(/; use another snapshot\.$/, ''));
        throw err;
      }
    };

    const database = manifest.files.find((f) => f.part === 'database') ?? fail('decrypt-database', 'the manifest lists no database part');
    const archive = await decrypt(database);
    stopIfAborted();
    opts.events?.phase?.('list archive');
    let toc;
    try {
      toc = await archiveTables(server, archive);
    } catch (err) {
      return fail('archive', `${errorMessage(err)}`);
    }
    checks.push({ name: 'archive', ok: true, detail: `pg_restore --list reads the archive (${toc.length} tables)` });
    stopIfAborted();

    opts.events?.phase?.('restore');
    await createScratch(server);
    try {
      try {
        await restoreIntoScratch(server, archive, config.verify?.jobs, opts.signal);
      } catch (err) {
        // Stopped on purpose (daemon shutdown): not the snapshot's fault, nothing is recorded.
        stopIfAborted();
        if (err instanceof ToolError) fail('restore', `${err.message} (into scratch database "${server.name}")`);
        throw err;
      }
      checks.push({ name: 'restore', ok: true, detail: `restored into scratch database "${server.name}"` });
      await rm(archive, { force: true });
      opts.events?.phase?.('check');
      const restored = await readRestoredFacts(server);
      for (const check of compareWithManifest(manifest.mastodon, toc, restored)) {
        if (check.ok) checks.push(check);
        else fail(check.name, check.detail);
      }
    } finally {
      opts.events?.phase?.('drop scratch database');
      await dropScratch(server).catch((err: unknown) => {
        throw new ToolError(
          `Could not drop the scratch database "${server.name}" after verifying: drop it by hand (DROP DATABASE "${server.name}").`,
          { argv: ['DROP DATABASE', server.name], exitStatus: null, stderr: errorMessage(err), cause: err },
        );
      });
    }

    for (const file of manifest.files) {
      stopIfAborted();
      if (file.part === 'redis') {
        const rdb = await decrypt(file);
        const check = await checkRdbFile(rdb);
        await rm(rdb, { force: true });
        if (!check.ok) fail(check.name, check.detail);
        checks.push(check);
      } else if (file.part === 'secrets') {
        const env = await decrypt(file);
        await rm(env, { force: true });
      }
    }
  } catch (err) {
    if (!(err instanceof CheckFailed)) throw err;
  } finally {
    await temp.dispose();
  }

  const failed = checks.find((c) => !c.ok);
  const result: VerifyResult = {
    snapshot: snapshot.id,
    ok: failed === undefined,
    reason: failed ? failed.detail : null,
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
