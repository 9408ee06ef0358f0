import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { daemonSchedules, firingMinutes, minuteIn, scheduleCollisions } from '../../../src/schedule/collisions.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pf-collisions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(path.join(dir, 'vault'));
writeFileSync(path.join(dir, 'pass'), 'secret\n', { mode: 0o600 });

const config = (extra: Record<string, unknown>) =>
  parseConfig(
    JSON.stringify({
      vault: { dir: path.join(dir, 'vault'), passphraseFile: path.join(dir, 'pass') },
      schedule: { backup: '0 * * * *', verify: '30 3 * * *', check: '15 4 * * 0' },
      ...extra,
    }),
    'test.yaml',
  );

// Sunday 2026-12-06 12:00 UTC.
const now = new Date('2026-12-06T12:00:00Z');
const HOUR = 3_600_000;

describe('daemonSchedules', () => {
  it('the server runs backup, verify and check on their patterns', () => {
    expect(daemonSchedules(config({ database: { name: 'm' } }))).toEqual([
      { name: 'backup', cron: '0 * * * *' },
      { name: 'verify', cron: '30 3 * * *' },
      { name: 'check', cron: '15 4 * * 0' },
    ]);
  });

  it('a device checks, and verifies only with a verify.connection', () => {
    expect(daemonSchedules(config({}))).toEqual([{ name: 'check', cron: '15 4 * * 0' }]);
    expect(daemonSchedules(config({ verify: { connection: { host: '127.0.0.1' } } })).map((j) => j.name)).toEqual(['verify', 'check']);
  });
});

describe('firingMinutes', () => {
  it('lists each minute a job starts in, once even when it fires every second', () => {
    const hourly = firingMinutes('0 * * * *', 'UTC', now, 3 * HOUR);
    expect([...hourly.minutes].map((m) => new Date(m).toISOString())).toEqual([
      '2026-12-06T12:00:00.000Z',
      '2026-12-06T13:00:00.000Z',
      '2026-12-06T14:00:00.000Z',
    ]);
    expect(hourly.until).toBe(now.getTime() + 3 * HOUR);
    const seconds = firingMinutes('* * * * * *', 'UTC', now, 3 * 60_000);
    expect(seconds.minutes.size).toBe(3);
  });

  it('stops at 2000 firings and says where it stopped', () => {
    const every = firingMinutes('* * * * *', 'UTC', now, 7 * 24 * HOUR);
    expect(every.minutes.size).toBe(2000);
    expect(every.until).toBe(now.getTime() + 2000 * 60_000);
  });

  it('throws on a garbled pattern rather than reporting no firings', () => {
    expect(() => firingMinutes('61 * * * *', 'UTC', now, HOUR)).toThrow();
  });
});

describe('scheduleCollisions', () => {
  it('finds pairs starting in the same minute, with their count and first minute', () => {
    const out = scheduleCollisions(
      [
        { name: 'backup', cron: '*/10 * * * *' },
        { name: 'verify', cron: '10 4 * * *' },
        { name: 'check', cron: '5 4 * * *' },
      ],
      'UTC',
      now,
    );
    expect(out).toHaveLength(1);
    expect(out[0]!.a.name).toBe('backup');
    expect(out[0]!.b.name).toBe('verify');
    expect(out[0]!.count).toBe(7);
    expect(out[0]!.first.toISOString()).toBe('2026-12-07T04:10:00.000Z');
    expect(out[0]!.until.getTime()).toBe(now.getTime() + 7 * 24 * HOUR);
  });

  it('finds none when the minutes differ, and reads patterns in the given time zone', () => {
    expect(
      scheduleCollisions(
        [
          { name: 'backup', cron: '0 * * * *' },
          { name: 'verify', cron: '30 3 * * *' },
        ],
        'UTC',
        now,
      ),
    ).toEqual([]);
    // 03:00 in Berlin is 02:00 UTC in winter.
    const berlin = firingMinutes('0 3 * * *', 'Europe/Berlin', now, 24 * HOUR);
    expect([...berlin.minutes].map((m) => new Date(m).toISOString())).toEqual(['2026-12-07T02:00:00.000Z']);
  });
});

describe('minuteIn', () => {
  it('formats a minute in the given time zone', () => {
    expect(minuteIn(new Date('2026-12-07T03:10:00Z'), 'Europe/Berlin')).toBe('2026-12-07 04:10');
    expect(minuteIn(new Date('2026-12-07T03:10:00Z'), 'UTC')).toBe('2026-12-07 03:10');
  });
});
