import { describe, expect, it } from 'vitest';
import { keyOf, locationOf, normalizePrefix, parseS3Url } from '../../../src/offsite/target.js';
import { offsiteSchema } from '../../../src/config/schema-offsite.js';

describe('offsite target', () => {
  it('normalizes prefixes to "" or "a/b/"', () => {
    expect(normalizePrefix('')).toBe('');
    expect(normalizePrefix('/a/b/')).toBe('a/b/');
    expect(normalizePrefix('a')).toBe('a/');
    expect(keyOf(locationOf({ bucket: 'bkt', prefix: 'pf' }), '2026-01-01T00-00-00Z/manifest.json')).toBe(
      'pf/2026-01-01T00-00-00Z/manifest.json',
    );
  });

  it('parses s3:// addresses and refuses others', () => {
    expect(parseS3Url('s3://my-bucket/permafrost')).toEqual({ bucket: 'my-bucket', prefix: 'permafrost/' });
    expect(parseS3Url('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(() => parseS3Url('s3://Bad_Bucket/x')).toThrow(/not an s3:\/\/BUCKET\/PREFIX address/);
    expect(() => parseS3Url('s3://bkt/a/../b')).toThrow(/must not contain/);
    expect(() => parseS3Url('/srv/vault')).toThrow(/not an s3/);
  });

  it('the config schema refuses a second target of the same name, a prefix with .., and keys in the YAML', () => {
    const base = { name: 'b2', bucket: 'my-bucket' };
    expect(offsiteSchema.safeParse([base]).success).toBe(true);
    expect(offsiteSchema.safeParse([base, base]).error?.issues[0]?.message).toMatch(/a second target named b2/);
    expect(offsiteSchema.safeParse([{ ...base, prefix: 'a/../b' }]).success).toBe(false);
    expect(offsiteSchema.safeParse([{ ...base, secretAccessKey: 'x' }]).success).toBe(false);
    expect(offsiteSchema.parse([{ ...base, lock: { mode: 'compliance', days: 30 } }])[0]).toMatchObject({
      region: 'us-east-1',
      prefix: '',
      pathStyle: false,
    });
  });
});
