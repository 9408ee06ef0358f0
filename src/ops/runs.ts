/**
 * A whole run of a job, as `permafrost backup`/`verify` and the daemon's jobs both do it: the job
 * itself, its alerts (notify.*) before and after, then each device's staleness.
 */
import { readdir } from 'node:fs/promises';
import { requireSource } from '../config/normalize.js';
import type { Config } from '../config/schema.js';
import { BusyError, errorMessage, IntegrityError, PermafrostError } from '../errors.js';
import { logAlertingFailure, type NotifyLog } from '../notify/alerts.js';
import { backupWithAlerts, checkWithAlerts, requiredPartsFailed, verifyWithAlerts } from '../notify/report.js';
import { sweepAndReport } from '../recover/sweep.js';
import { runBackup, type BackupResult } from './backup.js';
import type { CheckResult } from './check.js';
import type { VerifyResult } from './verify.js';
import type { SecretFlags } from '../crypto/keys-identity.js';
import type { SignerFlags } from '../crypto/signature.js';
import { recordBackupRun, type BackupRun } from '../vault/runs-state.js';
import { SNAPSHOT_ID_RE } from '../vault/store.js';
import type { RunContext } from '../run-context.js';
import type { JobSecrets } from '../config/secret-values.js';
import { readJobSecrets } from './secrets.js';
import { openVault } from '../vault/layout.js';

/**
 * One backup with its alerts and device checks; needs a source config (a backup device makes no
 * backups). Every secret the run needs is read once, at its start (or by the caller that starts it). A snapshot committed without a required part (Redis down, …) ends the run with exit 1
 * after it is safely in the vault; the error's detail lines carry the run's warnings.
 */
export async function runBackupJob(config: Config, ctx: RunContext, secrets: JobSecrets = readJobSecrets(config)): Promise<BackupResult> {
  const source = requireSource(config, 'backup');
  const { log } = ctx;
  await sweepAndReport(source, log, secrets);
  try {
    let result: BackupResult;
    try {
      result = await backupWithAlerts(source, () => runBackup(source, ctx, secrets).finally(() => ctx.events.end?.()), ctx, secrets);
    } catch (err) {
      // A run that found the vault busy or was stopped on purpose did not fail: it leaves the last outcome as it was.
      // Recorded once the vault is in use (it holds a snapshot): before the first one, "no snapshot yet" is already the verdict,
      // and a run that failed leaves an unused vault folder exactly as it found it.
      if (!(err instanceof BusyError) && !ctx.signal.aborted && (await holdsSnapshot(config.vault.dir))) {
        await recordRun(config, { outcome: 'failed', finishedAt: new Date().toISOString(), snapshot: null, error: errorMessage(err) }, log);
      }
      throw err;
    }
    const missing = requiredPartsFailed(result.manifest);
    await recordRun(
      config,
      { outcome: missing ? 'partial' : 'ok', finishedAt: new Date().toISOString(), snapshot: result.manifest.id, error: missing },
      log,
    );
    if (missing) throw new PermafrostError('part', missing, { details: result.warnings.map((w) => `warning: ${w}`) });
    return result;
  } finally {
    await watchAfterRun(config, log, secrets, { devices: true });
  }
}

/**
 * Each device's staleness and each offsite target's, after a run (ops/watch.ts). Their module
 * (the overview, Syncthing's reply schemas) is loaded only when there are alert channels and
 * something to watch: every backup pays its import otherwise, on a start-up it never uses.
 */
async function watchAfterRun(config: Config, log: NotifyLog, secrets: JobSecrets, opts: { devices: boolean }): Promise<void> {
  if (!config.notify || !((opts.devices && config.syncthing) || config.offsite)) return;
  const { checkDevices, checkOffsite } = await import('./watch.js');
  if (opts.devices) await checkDevices(config, log, secrets);
  await checkOffsite(config, log, secrets);
}

/** Whether `vaultDir` holds a snapshot folder (an unreadable or missing vault holds none). */
async function holdsSnapshot(vaultDir: string): Promise<boolean> {
  const names = await readdir(vaultDir).catch(() => [] as string[]);
  return names.some((n) => SNAPSHOT_ID_RE.test(n));
}

/** Records a backup run's outcome for the overview; a vault that cannot take it is a warning, never the run's failure. */
async function recordRun(config: Config, run: BackupRun, log: NotifyLog): Promise<void> {
  try {
    await recordBackupRun(openVault(config.vault.dir), run);
  } catch (err) {
    logAlertingFailure(log, `could not record the backup run in ${config.vault.dir}`, err);
  }
}

/** One verify of `snapshot` (default: the newest) with its alerts and device checks. A failed check is `ok: false`, not a throw. */
export async function runVerifyJob(
  config: Config,
  ctx: RunContext,
  opts: SecretFlags & SignerFlags & { snapshot?: string } = {},
): Promise<VerifyResult> {
  const secrets = readJobSecrets(config);
  await sweepAndReport(config, ctx.log, secrets);
  // Loaded here, not at the top: a backup (the job that runs most) never needs it.
  const { runVerify } = await import('./verify.js');
  try {
    return await verifyWithAlerts(
      config,
      () =>
        runVerify(config, ctx, secrets, {
          snapshot: opts.snapshot,
          passphraseFile: opts.passphraseFile,
          identity: opts.identity,
          identityPassphraseFile: opts.identityPassphraseFile,
          askIdentityPassphrase: opts.askIdentityPassphrase,
          signer: opts.signer,
          insecureNoSignatureCheck: opts.insecureNoSignatureCheck,
        }).finally(() => ctx.events.end?.()),
      ctx,
      secrets,
    );
  } finally {
    await watchAfterRun(config, ctx.log, secrets, { devices: true });
  }
}

/** One check of `snapshot` (default: every snapshot) with its alerts: damage is alerted once, and resolved by a whole-vault check that passes. */
export async function runCheckJob(
  config: Config,
  ctx: RunContext,
  opts: { snapshot?: string; secrets?: JobSecrets } = {},
): Promise<CheckResult> {
  const whole = opts.snapshot === undefined || opts.snapshot === 'all';
  const secrets = opts.secrets ?? readJobSecrets(config);
  const { checkFailed, runVaultCheck } = await import('./check.js');
  try {
    return await checkWithAlerts(config, () => runVaultCheck(config, opts.snapshot), ctx, secrets, {
      whole,
      describe: (r) => checkFailed(r).message,
    });
  } finally {
    // The daily check is also the offsite targets' watch on a quiet server (a target that stopped getting pushes).
    await watchAfterRun(config, ctx.log, secrets, { devices: false });
  }
}

/** The error a failed verification ends the CLI command or the daemon's run with (exit 3). */
export function verificationFailed(r: VerifyResult): IntegrityError {
  return new IntegrityError(
    `Snapshot ${r.snapshot} failed verification: ${r.reason}; use another snapshot and find out what damaged this one.`,
  );
}
