import { describe, expect, it } from 'vitest';
import { getentPasswd, getentPasswdArgv } from '../../../src/tools/getent.js';

describe('getent', () => {
  it.each([
    ['mastodon', ['getent', 'passwd', 'mastodon']],
    [0, ['getent', 'passwd', '0']],
  ])('argv for %j', (key, argv) => {
    expect(getentPasswdArgv(key)).toEqual(argv);
  });

  it('finds root by uid; an unknown account rejects', async () => {
    expect(await getentPasswd(0)).toMatch(/^root:[^:]*:0:/);
    await expect(getentPasswd('no-such-account-permafrost')).rejects.toThrow(/getent failed while looking up account/);
  });
});
