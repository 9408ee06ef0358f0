import { Cron } from 'croner';
import { z } from 'zod';

/** The backup schedule admins run today: hourly at minute 40. */
export const DEFAULT_BACKUP_CRON = '40 * * * *';

/** A daily test-restore, away from the hourly backup at minute 40. */
export const DEFAULT_VERIFY_CRON = '10 4 * * *';

/** The passphrase-free check of every snapshot's sizes and SHA-256 sums: hourly, away from the backup at minute 40. */
export const DEFAULT_CHECK_CRON = '25 * * * *';

/** True when `tz` is an IANA zone name Intl (and so croner) understands. */
export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Why croner refuses `pattern`, or null when it is a valid 5- or 6-field cron pattern. */
export function cronProblem(pattern: string): string | null {
  try {
    new Cron(pattern, { paused: true, mode: '5-or-6-parts' }).stop();
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** A cron pattern: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first. */
export const cronPattern = z.string().superRefine((v, ctx) => {
  const problem = cronProblem(v);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `expected a cron pattern like "40 * * * *" (${problem})` });
});

const keepCount = z.number().int().min(0, 'expected a count ≥ 0');

/** GFS retention, as restic `forget` and borgmatic define it; omitted rules keep nothing by themselves. */
export const keepSchema = z
  .strictObject({
    last: keepCount.optional(),
    hourly: keepCount.optional(),
    daily: keepCount.optional(),
    weekly: keepCount.optional(),
    monthly: keepCount.optional(),
    yearly: keepCount.optional(),
  })
  .refine((k) => Object.values(k).some((n) => n !== undefined && n > 0), {
    message: 'expected at least one of last, hourly, daily, weekly, monthly, yearly above 0 (or remove vault.keep to keep everything)',
  });

/** When the daemon runs jobs, and in which timezone (periods of vault.keep use it too). */
export const scheduleSchema = z.strictObject({
  backup: cronPattern.default(DEFAULT_BACKUP_CRON),
  /** Test-restore of the newest snapshot (permafrost verify) by the daemon: daily at 04:10. */
  verify: cronPattern.default(DEFAULT_VERIFY_CRON),
  /** Passphrase-free check of every snapshot against its manifest (permafrost check), on the server and on devices: hourly at minute 25. */
  check: cronPattern.default(DEFAULT_CHECK_CRON),
  /** IANA name such as Europe/Berlin (default: the system's timezone). */
  timezone: z.string().refine(isValidTimeZone, { message: 'expected an IANA timezone name such as "Europe/Berlin" or "UTC"' }).optional(),
});

export type KeepConfig = z.output<typeof keepSchema>;
export type ScheduleConfig = z.output<typeof scheduleSchema>;

/** The timezone for schedules and retention periods: schedule.timezone, else the system's. */
export function effectiveTimeZone(schedule: { timezone?: string } | undefined): string {
  return schedule?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC';
}
