import { describe, expect, it } from 'vitest';
import { majorOfToolVersion, majorOfVersionNum } from '../../../src/doctor/checks.js';
import { mayAccess, parseProcStatus } from '../../../src/doctor/syncthing.js';

describe('version majors', () => {
  it.each([
    [150018, '15'],
    [120000, '12'],
    [90624, '9.6'],
  ])('server_version_num %i → %s', (n, major) => expect(majorOfVersionNum(n)).toBe(major));

  it.each([
    ['15.18 (Debian 15.18-0+deb12u1)', '15'],
    ['12.0', '12'],
    ['9.6.24', '9.6'],
    ['17devel', '17'],
    ['weird', null],
  ])('pg_dump %s → %s', (v, major) => expect(majorOfToolVersion(v)).toBe(major));
});

describe("mayAccess (what the kernel decides for Syncthing's user)", () => {
  const who = { uid: 1001, gids: [1001, 50] };
  it.each([
    [{ uid: 1001, gid: 0, mode: 0o700 }, 'rx', true],
    [{ uid: 1000, gid: 50, mode: 0o750 }, 'rx', true],
    [{ uid: 1000, gid: 50, mode: 0o700 }, 'rx', false],
    [{ uid: 1000, gid: 1000, mode: 0o751 }, 'x', true],
    [{ uid: 1000, gid: 1000, mode: 0o751 }, 'r', false],
    [{ uid: 1000, gid: 1000, mode: 0o644 }, 'r', true],
    [{ uid: 1000, gid: 50, mode: 0o604 }, 'r', false], // group bits decide for a member, even if others may read
    [{ uid: 1001, gid: 1001, mode: 0o077 }, 'r', false],
  ])('%o need %s → %s', (st, need, expected) => expect(mayAccess(st, who, need)).toBe(expected));

  it('root may do anything', () => expect(mayAccess({ uid: 5, gid: 5, mode: 0 }, { uid: 0, gids: [0] }, 'rx')).toBe(true));

  it('reads uid and groups from /proc/PID/status', () => {
    const status = 'Name:\tsyncthing\nUid:\t113\t113\t113\t113\nGid:\t120\t120\t120\t120\nGroups:\t33 120 \n';
    expect(parseProcStatus(status)).toEqual({ uid: 113, gids: [120, 33, 120] });
    expect(parseProcStatus('Name:\tx\nUid:\t5\t5\t5\t5\nGid:\t6\t6\t6\t6\nGroups:\n')).toEqual({ uid: 5, gids: [6] });
  });
});
