import { describe, expect, it } from 'vitest';
import { offsiteSchema, offsiteTargetSchema } from '../../../src/config/schema-offsite.js';

const target = { name: 'b2', bucket: 'mastodon-backups' };
const issues = (value: unknown): string[] => {
  const r = offsiteSchema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('offsite targets', () => {
  it('fills the defaults: us-east-1, no prefix, virtual-host addressing', () => {
    expect(offsiteTargetSchema.parse(target)).toEqual({ ...target, region: 'us-east-1', prefix: '', pathStyle: false });
  });

  it('reads a full target: endpoint, path style, key files, lock, staleAfter as seconds', () => {
    const t = offsiteTargetSchema.parse({
      ...target,
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-central-003',
      prefix: 'masto/prod/',
      pathStyle: true,
      credentials: { accessKeyIdFile: '/etc/permafrost/key-id', secretAccessKeyFile: '/etc/permafrost/key' },
      lock: { mode: 'compliance', days: 30 },
      staleAfter: '2h',
    });
    expect(t.staleAfter).toBe(7200);
    expect(t.lock).toEqual({ mode: 'compliance', days: 30 });
    expect(t.prefix).toBe('masto/prod/');
  });

  it('refuses prefixes that climb or start at the root', () => {
    expect(issues([{ ...target, prefix: '../other' }])).toEqual(['0.prefix: a prefix must not start with "/" or contain ".."']);
    expect(issues([{ ...target, prefix: 'a/../../b' }])).toEqual(['0.prefix: a prefix must not start with "/" or contain ".."']);
    expect(issues([{ ...target, prefix: '/abs' }])).toEqual(['0.prefix: a prefix must not start with "/" or contain ".."']);
    expect(issues([{ ...target, prefix: 'a b?x=1' }])).toEqual(['0.prefix: expected a prefix of letters, digits, ".", "_", "-" and "/"']);
    expect(issues([{ ...target, prefix: 'a..b/' }])).toEqual([]);
  });

  it('refuses bad bucket names, names, endpoints, lock periods and secrets in the YAML', () => {
    expect(issues([{ ...target, bucket: 'Upper_Case' }])).toEqual([
      '0.bucket: expected a bucket name: 3-63 lowercase letters, digits, dots and dashes',
    ]);
    expect(issues([{ ...target, bucket: 'ab' }])).toHaveLength(1);
    expect(issues([{ ...target, bucket: 'a'.repeat(64) }])).toHaveLength(1);
    expect(issues([{ ...target, name: 'B2 target' }])).toHaveLength(1);
    expect(issues([{ ...target, endpoint: 'ftp://example.com' }])).toEqual(['0.endpoint: expected an http(s):// URL']);
    expect(issues([{ ...target, lock: { mode: 'forever', days: 1 } }])).toHaveLength(1);
    expect(issues([{ ...target, lock: { mode: 'governance', days: 0 } }])).toHaveLength(1);
    expect(issues([{ ...target, credentials: { accessKeyIdFile: 'relative', secretAccessKeyFile: '/k' } }])).toHaveLength(1);
    // A key in the YAML itself is an unknown field, not silently accepted.
    expect(issues([{ ...target, secretAccessKey: 'AKIA…' }])).toHaveLength(1);
    expect(issues([{ ...target, credentials: { accessKeyIdFile: '/a', secretAccessKeyFile: '/b', secretAccessKey: 'x' } }])).toHaveLength(
      1,
    );
  });

  it('needs at least one target, each named once', () => {
    expect(issues([])).toEqual([': list at least one target, or leave offsite out']);
    expect(issues([target, { ...target, bucket: 'other-bucket' }])).toEqual(['1.name: a second target named b2; names must differ']);
    expect(issues([target, { ...target, name: 's3' }])).toEqual([]);
  });
});
