import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { checkSchedule } from '../../../src/doctor/schedule.js';
import { scheduleCollisions } from '../../../src/schedule/collisions.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-schedule-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(path.join(dir, 'vault'));
writeFileSync(path.join(dir, 'pass'), 'secret\n', { mode: 0o600 });

function server(schedule: Record<string, string>) {
  const yaml = JSON.stringify({
    database: { name: 'm' },
    vault: { dir: path.join(dir, 'vault'), passphraseFile: path.join(dir, 'pass') },
    schedule: { timezone: 'Europe/Berlin', ...schedule },
  });
  return parseConfig(yaml, 'test.yaml');
}

// A Sunday noon in Berlin: the next week holds every weekday once.
const now = new Date('2026-12-06T11:00:00Z');

describe('schedule collisions (doctor)', () => {
  it('backup */10 and verify at 04:10 meet every day; check every two minutes and backup every minute meet every other minute', () => {
    const line = checkSchedule(server({ backup: '*/10 * * * *', verify: '10 4 * * *' }), now);
    expect(line.status).toBe('warn');
    expect(line.message).toBe(
      'schedule.backup "*/10 * * * *" and schedule.verify "10 4 * * *" start in the same minute 7 times in the next week (first 2026-12-07 04:10 Europe/Berlin): one of them waits until the other has finished',
    );
    expect(line.fix).toMatch(/^move one of each pair to minutes the other never uses/);

    const every = checkSchedule(server({ backup: '* * * * *', check: '*/2 * * * *' }), now);
    expect(every.status).toBe('warn');
    // A job every minute is looked at for its next 2000 firings (33 hours), not a whole week.
    expect(every.message).toContain(
      'schedule.backup "* * * * *" and schedule.check "*/2 * * * *" start in the same minute 1000 times in the next 33 hours (first 2026-12-06 12:00 Europe/Berlin)',
    );
    // verify at 04:10 meets a backup every minute too: both pairs are named.
    expect(every.message).toContain(
      'schedule.backup "* * * * *" and schedule.verify "10 4 * * *" start in the same minute once in the next 33 hours',
    );
  });

  it('the defaults never meet; a device without verify.connection has only its check', () => {
    expect(checkSchedule(server({}), now)).toEqual({
      check: 'schedule',
      status: 'ok',
      message: 'backup, verify, check: no two start in the same minute in the next week (Europe/Berlin)',
    });
    const device = parseConfig(JSON.stringify({ vault: { dir: path.join(dir, 'vault') }, schedule: { check: '10 4 * * *' } }), 'd.yaml');
    expect(checkSchedule(device, now)).toMatchObject({ status: 'ok', message: expect.stringMatching(/^check: no two start/) as unknown });
  });

  it('counts minutes, not seconds: two six-field patterns in the same minute meet once per minute', () => {
    const jobs = [
      { name: 'backup' as const, cron: '*/20 * * * * *' },
      { name: 'check' as const, cron: '30 0 * * * *' },
    ];
    // Once an hour, at hh:00 (the first right now); the six-field pattern fires 3 times a minute but counts once.
    expect(scheduleCollisions(jobs, 'UTC', new Date('2026-12-06T11:00:00Z'), 24 * 3600_000)).toEqual([
      { a: jobs[0], b: jobs[1], count: 24, first: new Date('2026-12-06T11:00:00Z'), until: new Date('2026-12-07T11:00:00Z') },
    ]);
    expect(scheduleCollisions(jobs, 'UTC', new Date('2026-12-06T11:01:00Z'), 30 * 60_000)).toEqual([]);
  });
});
