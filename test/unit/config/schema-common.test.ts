import { describe, expect, it } from 'vitest';
import { absPath } from '../../../src/config/schema-common.js';

describe('absPath (every file or folder named in the config)', () => {
  it('takes an absolute path as it is', () => {
    expect(absPath.parse('/var/lib/permafrost')).toBe('/var/lib/permafrost');
    expect(absPath.parse('/')).toBe('/');
  });

  it.each(['var/lib/permafrost', './vault', '~/vault', ''])('refuses %j: the CLI and the daemon run from different folders', (p) => {
    const r = absPath.safeParse(p);
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.message).toBe('expected an absolute path');
  });
});
