import type { Config } from '../config/schema.js';
import { BusyError, errorMessage } from '../errors.js';
import type { JobSecrets } from '../config/secret-values.js';
import type { RunContext } from '../run-context.js';
import type { Manifest } from '../vault/manifest.js';
import { notifyOutcome, type NotifyLog } from './alerts.js';

/**
 * Runs a backup and reports it to the alert channels: ping start, then success or failure.
 * The backup's own result or error passes through unchanged; alerting never fails it. A run that
 * found the vault busy or was stopped on purpose is not a failure to alert about. A snapshot
 * committed without a part that is not optional is a failure too (its database is safe, but it is
 * not the whole server).
 */
export async function backupWithAlerts<T extends { manifest: Pick<Manifest, 'id' | 'failed'> }>(
  config: Config,
  run: () => Promise<T>,
  ctx: Pick<RunContext, 'log' | 'signal'>,
  secrets: JobSecrets,
): Promise<T> {
  await notifyOutcome(config, { kind: 'backup.start' }, { log: ctx.log, secrets });
  let result: T;
  try {
    result = await run();
  } catch (err) {
    if (!(err instanceof BusyError) && !ctx.signal.aborted) {
      await notifyOutcome(config, { kind: 'backup', ok: false, error: errorMessage(err) }, { log: ctx.log, secrets });
    }
    throw err;
  }
  const missing = requiredPartsFailed(result.manifest);
  await notifyOutcome(
    config,
    missing ? { kind: 'backup', ok: false, error: missing } : { kind: 'backup', ok: true, snapshot: result.manifest.id },
    { log: ctx.log, secrets },
  );
  return result;
}

/** One sentence when a snapshot was committed without a part the config requires, else null. */
export function requiredPartsFailed(manifest: Pick<Manifest, 'id' | 'failed'>): string | null {
  const failed = (manifest.failed ?? []).filter((f) => !f.optional);
  if (failed.length === 0) return null;
  const names = failed.map((f) => f.part).join(' and ');
  return `Snapshot ${manifest.id} was written with the database but without its ${names} part: ${failed.map((f) => f.error.replace(/\.$/, '')).join('; ')}.`;
}

/** Runs a verify and reports a failed snapshot, or an error that kept it from running, or a recovery. */
export async function verifyWithAlerts<T extends { ok: boolean; snapshot: string; reason: string | null }>(
  config: Config,
  run: () => Promise<T>,
  ctx: Pick<RunContext, 'log' | 'signal'>,
  secrets: JobSecrets,
): Promise<T> {
  let result: T;
  try {
    result = await run();
  } catch (err) {
    if (!(err instanceof BusyError) && !ctx.signal.aborted) {
      await notifyOutcome(config, { kind: 'verify', ok: false, snapshot: null, error: errorMessage(err) }, { log: ctx.log, secrets });
    }
    throw err;
  }
  await notifyOutcome(
    config,
    result.ok
      ? { kind: 'verify', ok: true, snapshot: result.snapshot }
      : { kind: 'verify', ok: false, snapshot: result.snapshot, error: result.reason ?? 'verification failed' },
    { log: ctx.log, secrets },
  );
  return result;
}

/**
 * Runs a snapshot check and reports damage (or an error that kept it from running) once, and its
 * end once. Only a check of the whole vault (`whole`) can say the damage is gone.
 */
export async function checkWithAlerts<T extends { ok: boolean }>(
  config: Config,
  run: () => Promise<T>,
  ctx: Pick<RunContext, 'log'>,
  secrets: JobSecrets,
  judged: { whole: boolean; describe: (result: T) => string },
): Promise<T> {
  let result: T;
  try {
    result = await run();
  } catch (err) {
    await notifyOutcome(config, { kind: 'check', ok: false, error: errorMessage(err) }, { log: ctx.log, secrets });
    throw err;
  }
  if (!result.ok) await notifyOutcome(config, { kind: 'check', ok: false, error: judged.describe(result) }, { log: ctx.log, secrets });
  else if (judged.whole) await notifyOutcome(config, { kind: 'check', ok: true }, { log: ctx.log, secrets });
  return result;
}

/** Reports each device's staleness (from replication status): one alert when stale, one when it recovers. */
export async function reportDevices(
  config: Config,
  devices: ReadonlyArray<{ name: string; stale: boolean; newestOnDevice: string | null; problem?: string | null }>,
  opts: { log?: NotifyLog; secrets: JobSecrets },
): Promise<void> {
  for (const d of devices) {
    await notifyOutcome(
      config,
      d.stale
        ? {
            kind: 'device',
            device: d.name,
            ok: false,
            snapshot: d.newestOnDevice,
            error: d.newestOnDevice ? `its newest complete snapshot is ${d.newestOnDevice}` : 'no snapshot is known to be complete on it',
          }
        : { kind: 'device', device: d.name, ok: true, snapshot: d.newestOnDevice },
      opts,
    );
  }
}
