import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { configSchema, databaseSchema, vaultSchema } from '../../../src/config/schema.js';
import { describeIssues } from '../../../src/schema-issues.js';

/** Every problem of `input`, as the config loader reports them (key path: message). */
function problems(schema: z.ZodType, input: unknown): string[] {
  const r = schema.safeParse(input);
  return r.success ? [] : describeIssues(r.error.issues);
}

describe('databaseSchema', () => {
  it('defaults: OpenPGP compression level 1, no delta', () => {
    expect(databaseSchema.parse({ name: 'mastodon' })).toEqual({ name: 'mastodon', compression: 1 });
  });

  it.each([0, 9, 'none', 'gzip', 'lz4', 'zstd:3', 'gzip:6'])('compression %j is accepted', (c) => {
    expect(databaseSchema.parse({ name: 'm', compression: c }).compression).toBe(c);
  });

  it.each([10, -1, 1.5, 'brotli', 'zstd:', 'lz4:fast'])('compression %j is refused', (c) => {
    expect(problems(databaseSchema, { name: 'm', compression: c })).toHaveLength(1);
  });

  it('delta: fullEvery defaults to a day; port 1..65535; a name is required; unknown keys are refused', () => {
    expect(databaseSchema.parse({ name: 'm', delta: {} }).delta).toEqual({ fullEvery: 86_400 });
    expect(problems(databaseSchema, { name: 'm', port: 0 })).toHaveLength(1);
    expect(problems(databaseSchema, { name: 'm', port: 65_536 })).toHaveLength(1);
    expect(problems(databaseSchema, { name: '' })).toEqual([expect.stringContaining('expected a database name')]);
    expect(problems(databaseSchema, { name: 'm', pasword: 'x' }).join()).toContain('pasword');
  });
});

describe('vaultSchema', () => {
  it('paths must be absolute; recipients, when given, at least one', () => {
    expect(problems(vaultSchema, { dir: 'vault' })).toEqual([expect.stringContaining('expected an absolute path')]);
    expect(problems(vaultSchema, { dir: '/v', recipients: [] })).toEqual([
      expect.stringContaining('list at least one public key file, or leave recipients out'),
    ]);
    expect(problems(vaultSchema, { dir: '/v', passphraseFile: 'pass', tempDir: 'tmp' })).toHaveLength(2);
    expect(vaultSchema.parse({ dir: '/v', recipients: ['/k.asc'], keep: { last: 3 } })).toMatchObject({ recipients: ['/k.asc'] });
  });
});

describe('configSchema (the whole file)', () => {
  it('a vault alone is a valid config; schedule gets its defaults', () => {
    const c = configSchema.parse({ vault: { dir: '/v' } });
    expect(c.schedule).toEqual({ backup: '40 * * * *', verify: '10 4 * * *', check: '25 * * * *' });
    expect(c.database).toBeUndefined();
  });

  it('every problem at once, with its key path; an unknown top-level section is refused', () => {
    const p = problems(configSchema, { database: { name: 'm', port: 'x' }, vault: { dir: 'rel' }, vaults: {} });
    expect(p).toHaveLength(3);
    expect(p.join('\n')).toMatch(/database\.port/);
    expect(p.join('\n')).toMatch(/vault\.dir/);
    expect(p.join('\n')).toMatch(/vaults/);
    expect(problems(configSchema, {})).toEqual([expect.stringMatching(/^vault/)]);
  });
});
