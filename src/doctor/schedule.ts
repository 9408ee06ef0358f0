import type { Config } from '../config/schema.js';
import { effectiveTimeZone } from '../config/schema-schedule.js';
import { daemonSchedules, minuteIn, scheduleCollisions } from '../schedule/collisions.js';
import type { CheckLine } from './checks.js';

/**
 * WARNs of jobs whose schedules start in the same minute within the next week: the daemon runs one
 * after the other, so one of them waits for the other to finish (and under systemd timers they run
 * at once and compete for disk and CPU).
 */
export function checkSchedule(config: Config, now = new Date()): CheckLine {
  const tz = effectiveTimeZone(config.schedule);
  const jobs = daemonSchedules(config);
  const week = 7 * 24 * 3600_000;
  const collisions = scheduleCollisions(jobs, tz, now, week);
  const within = (until: Date): string => {
    const ms = until.getTime() - now.getTime();
    return ms >= week ? 'the next week' : `the next ${Math.max(1, Math.round(ms / 3600_000))} hours`;
  };
  const names = jobs.map((j) => j.name).join(', ');
  if (collisions.length === 0) {
    return { check: 'schedule', status: 'ok', message: `${names}: no two start in the same minute in the next week (${tz})` };
  }
  const message = collisions
    .map(
      ({ a, b, count, first, until }) =>
        `schedule.${a.name} "${a.cron}" and schedule.${b.name} "${b.cron}" start in the same minute ${count === 1 ? 'once' : `${count} times`} in ${within(until)} (first ${minuteIn(first, tz)} ${tz}): one of them waits until the other has finished`,
    )
    .join('; ');
  return {
    check: 'schedule',
    status: 'warn',
    message,
    fix: 'move one of each pair to minutes the other never uses (the defaults never meet: backup "40 * * * *", verify "10 4 * * *", check "25 * * * *")',
  };
}
