import { describe, expect, it } from 'vitest';
import { cronProblem, effectiveTimeZone, isValidTimeZone, keepSchema, scheduleSchema } from '../../../src/config/schema-schedule.js';

describe('schedule section', () => {
  it('fills the defaults away from each other: backup :40, check :25, verify 04:10', () => {
    expect(scheduleSchema.parse({})).toEqual({ backup: '40 * * * *', verify: '10 4 * * *', check: '25 * * * *' });
  });

  it('accepts 5 and 6 fields, refuses garbled patterns with croner saying why', () => {
    expect(cronProblem('*/10 * * * *')).toBeNull();
    expect(cronProblem('0 */10 * * * *')).toBeNull();
    expect(cronProblem('61 * * * *')).not.toBeNull();
    expect(cronProblem('* * *')).not.toBeNull();
    expect(cronProblem('')).not.toBeNull();
    const r = scheduleSchema.safeParse({ backup: 'every hour' });
    expect(r.error?.issues[0]?.path).toEqual(['backup']);
    expect(r.error?.issues[0]?.message).toMatch(/^expected a cron pattern like "40 \* \* \* \*" \(.+\)$/);
  });

  it('takes IANA time zones only', () => {
    expect(isValidTimeZone('Europe/Berlin')).toBe(true);
    expect(isValidTimeZone('UTC')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
    expect(scheduleSchema.safeParse({ timezone: 'CEST+2' }).success).toBe(false);
    expect(effectiveTimeZone({ timezone: 'Asia/Tokyo' })).toBe('Asia/Tokyo');
    expect(effectiveTimeZone(undefined)).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
  });
});

describe('vault.keep', () => {
  it('needs at least one rule above 0', () => {
    expect(keepSchema.parse({ last: 6, daily: 7 })).toEqual({ last: 6, daily: 7 });
    expect(keepSchema.safeParse({}).success).toBe(false);
    expect(keepSchema.safeParse({ last: 0, daily: 0 }).error?.issues[0]?.message).toMatch(/^expected at least one of last, hourly/);
  });

  it('refuses negative or fractional counts and unknown rules', () => {
    expect(keepSchema.safeParse({ last: -1, daily: 3 }).error?.issues[0]?.message).toBe('expected a count ≥ 0');
    expect(keepSchema.safeParse({ last: 1.5 }).success).toBe(false);
    expect(keepSchema.safeParse({ last: 3, forever: 1 }).success).toBe(false);
  });
});
