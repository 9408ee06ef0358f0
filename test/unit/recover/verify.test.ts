import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { SCRATCH_COMMENT, scratchCreator } from '../../../src/recover/verify.js';

describe('what a sweep may remove', () => {
  it("a scratch mark names its creator on this host only; another host's or an unmarked database is never judged", () => {
    const mark = (host: string): string => `${SCRATCH_COMMENT}; host ${host}; pid 4242; boot b-1; start 777`;
    expect(scratchCreator(mark(hostname()))).toEqual({ pid: 4242, boot: 'b-1', start: '777' });
    expect(scratchCreator(mark('another-host'))).toBeNull();
    expect(scratchCreator(SCRATCH_COMMENT)).toBeNull();
    expect(scratchCreator('the production database')).toBeNull();
    expect(scratchCreator(null)).toBeNull();
  });
});
