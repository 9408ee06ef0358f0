import { describe, expect, it } from 'vitest';
import { majorOfToolVersion, majorOfVersionNum } from '../../../src/doctor/checks.js';

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
