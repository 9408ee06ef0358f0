import { describe, expect, it } from 'vitest';
import { majorOfToolVersion, majorOfVersionNum } from '../../../src/doctor/checks.js';
import { nextSteps } from '../../../src/ops/restore.js';

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

describe('restore next steps', () => {
  it('names stopping services, putting files back and the tootctl re-fetch of the skipped media cache', () => {
    const steps = nextSteps({ database: 'mastodon_production', redis: '/root/dump.rdb', secrets: '/root/env', snapshot: 'S' }).join('\n');
    expect(steps).toMatch(/systemctl stop mastodon-web/);
    expect(steps).toMatch(/\/root\/dump\.rdb/);
    expect(steps).toMatch(/\/root\/env .*\.env\.production/);
    expect(steps).toMatch(/tootctl accounts refresh --all/);
    expect(steps).toMatch(/tootctl media refresh/);
  });

  it('without a database restore it says how to do one, without Redis it says to rebuild feeds', () => {
    const steps = nextSteps({ database: null, redis: null, secrets: null, snapshot: 'S1' }).join('\n');
    expect(steps).toMatch(/permafrost restore S1 --database/);
    expect(steps).toMatch(/tootctl feeds build/);
  });
});
