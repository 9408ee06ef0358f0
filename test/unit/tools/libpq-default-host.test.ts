import { describe, expect, it } from 'vitest';
import { libpqDefaultHost } from '../../../src/tools/postgres.js';

describe('libpqDefaultHost', () => {
  it("is Debian's socket folder when PGHOST is unset and the folder exists, as psql's default is", () => {
    expect(libpqDefaultHost({}, (p) => p === '/var/run/postgresql')).toBe('/var/run/postgresql');
    expect(libpqDefaultHost({}, () => false)).toBeUndefined();
    expect(libpqDefaultHost({ PGHOST: '/tmp/sock' }, () => true)).toBeUndefined();
  });
});
