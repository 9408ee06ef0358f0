import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { SCRATCH_COMMENT, scratchCreator } from '../../../src/recover/verify.js';
import { identityAlive, parseLockBody, selfIdentity } from '../../../src/vault/lock.js';

describe('what a sweep may remove', () => {
  it("a scratch mark names its creator on this host only; another host's or an unmarked database is never judged", () => {
    const mark = (host: string): string => `${SCRATCH_COMMENT}; host ${host}; pid 4242; boot b-1; start 777`;
    expect(scratchCreator(mark(hostname()))).toEqual({ pid: 4242, boot: 'b-1', start: '777' });
    expect(scratchCreator(mark('another-host'))).toBeNull();
    expect(scratchCreator(SCRATCH_COMMENT)).toBeNull();
    expect(scratchCreator('the production database')).toBeNull();
    expect(scratchCreator(null)).toBeNull();
  });

  it('a holder is alive only when PID, boot id and start time all match', () => {
    const me = selfIdentity();
    expect(identityAlive(me)).toBe(true);
    expect(identityAlive({ ...me, boot: 'another boot' })).toBe(false);
    expect(identityAlive({ ...me, start: `${Number(me.start) + 1}` })).toBe(false);
    // A lock from an older permafrost names its PID alone.
    expect(parseLockBody(`${process.pid}\nbackup\n`)).toEqual({ pid: process.pid, boot: null, start: null });
    expect(parseLockBody('')).toBeNull();
  });
});
