/**
 * Which jobs the daemon schedules for a config, and which of their schedules meet: two jobs that
 * start in the same minute cannot both run then (the daemon runs one after the other), which
 * `permafrost doctor` warns of. Pure apart from the clock passed in.
 */
import { Cron } from 'croner';
import type { Config } from '../config/schema.js';

export type JobName = 'backup' | 'verify' | 'check';

export interface JobSchedule {
  name: JobName;
  /** The cron pattern, from schedule.<name>. */
  cron: string;
}

/**
 * The jobs the daemon runs, by role: the server backs up, verifies and checks; a backup device
 * checks, and verifies only on the server in verify.connection (without it there is no PostgreSQL
 * to test-restore on).
 */
export function daemonSchedules(config: Config): JobSchedule[] {
  const s = config.schedule;
  if (config.role === 'source') {
    return [
      { name: 'backup', cron: s.backup },
      { name: 'verify', cron: s.verify },
      { name: 'check', cron: s.check },
    ];
  }
  return config.verify?.connection
    ? [
        { name: 'verify', cron: s.verify },
        { name: 'check', cron: s.check },
      ]
    : [{ name: 'check', cron: s.check }];
}

const MINUTE = 60_000;

/** At most this many firings per job are looked at (croner takes ~0.1 ms each): a job every minute covers ~33 hours. */
const MAX_FIRINGS = 2000;

/**
 * The minutes (epoch ms, floored) in which `cron` fires in [from, until), where `until` is
 * from + horizonMs, or earlier when the job fires in more than MAX_FIRINGS minutes by then.
 */
export function firingMinutes(cron: string, timezone: string, from: Date, horizonMs: number): { minutes: Set<number>; until: number } {
  const c = new Cron(cron, { timezone, mode: '5-or-6-parts', paused: true });
  const end = from.getTime() + horizonMs;
  const minutes = new Set<number>();
  let after = new Date(from.getTime() - 1);
  try {
    for (;;) {
      const next = c.nextRun(after);
      if (!next || next.getTime() >= end) return { minutes, until: end };
      const minute = Math.floor(next.getTime() / MINUTE) * MINUTE;
      if (minutes.size === MAX_FIRINGS) return { minutes, until: minute };
      minutes.add(minute);
      // A pattern with seconds may fire many times a minute: one per minute is all that counts.
      after = new Date(minute + MINUTE - 1);
    }
  } finally {
    c.stop();
  }
}

export interface Collision {
  a: JobSchedule;
  b: JobSchedule;
  /** How many minutes both start in, before `until`. */
  count: number;
  /** The first such minute. */
  first: Date;
  /** The end of the time looked at: now + the horizon, or earlier for jobs that fire very often. */
  until: Date;
}

/** Pairs of jobs that start in the same minute at least once within `horizonMs` (default: a week) from `now`. */
export function scheduleCollisions(
  jobs: readonly JobSchedule[],
  timezone: string,
  now: Date,
  horizonMs = 7 * 24 * 60 * MINUTE,
): Collision[] {
  const firings = jobs.map((j) => firingMinutes(j.cron, timezone, now, horizonMs));
  const out: Collision[] = [];
  for (let i = 0; i < jobs.length; i++) {
    for (let k = i + 1; k < jobs.length; k++) {
      const until = Math.min(firings[i]!.until, firings[k]!.until);
      // Sets keep insertion order, and firings were added in time order: shared[0] is the first.
      const shared = [...firings[i]!.minutes].filter((m) => m < until && firings[k]!.minutes.has(m));
      if (shared.length > 0) {
        out.push({ a: jobs[i]!, b: jobs[k]!, count: shared.length, first: new Date(shared[0]!), until: new Date(until) });
      }
    }
  }
  return out;
}

/** "2026-12-07 04:10" in `timezone`. */
export function minuteIn(date: Date, timezone: string): string {
  return new Intl.DateTimeFormat('sv-SE', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  }).format(date);
}
