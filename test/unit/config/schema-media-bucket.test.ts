import { describe, expect, it } from 'vitest';
import { mediaBucketSchema } from '../../../src/config/schema-media-bucket.js';

describe('media bucket', () => {
  it('fills the defaults, and the variable names of credentialsFromEnv', () => {
    expect(mediaBucketSchema.parse({ bucket: 'files.mastodon.example' })).toEqual({
      bucket: 'files.mastodon.example',
      region: 'us-east-1',
      prefix: '',
      pathStyle: false,
    });
    const m = mediaBucketSchema.parse({ bucket: 'media', credentialsFromEnv: { file: '/home/mastodon/live/.env.production' } });
    expect(m.credentialsFromEnv).toEqual({
      file: '/home/mastodon/live/.env.production',
      accessKeyId: 'AWS_ACCESS_KEY_ID',
      secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
    });
  });

  it('refuses both key sources at once', () => {
    const r = mediaBucketSchema.safeParse({
      bucket: 'media',
      credentials: { accessKeyIdFile: '/a', secretAccessKeyFile: '/b' },
      credentialsFromEnv: { file: '/env' },
    });
    expect(r.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['credentialsFromEnv', 'give credentials (two key files) or credentialsFromEnv (.env.production), not both'],
    ]);
  });

  it('refuses climbing prefixes, odd variable names, bad buckets and keys inline', () => {
    expect(mediaBucketSchema.safeParse({ bucket: 'media', prefix: '../x' }).success).toBe(false);
    expect(mediaBucketSchema.safeParse({ bucket: 'media', prefix: '/x' }).success).toBe(false);
    expect(mediaBucketSchema.safeParse({ bucket: 'media', credentialsFromEnv: { file: '/e', accessKeyId: 'x; rm -rf /' } }).success).toBe(
      false,
    );
    expect(mediaBucketSchema.safeParse({ bucket: 'MEDIA' }).success).toBe(false);
    expect(mediaBucketSchema.safeParse({ bucket: 'media', endpoint: 'file:///etc' }).success).toBe(false);
    expect(mediaBucketSchema.safeParse({ bucket: 'media', secretAccessKey: 'x' }).success).toBe(false);
  });
});
