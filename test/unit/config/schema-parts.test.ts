import { describe, expect, it } from 'vitest';
import { redisSchema, secretsSchema } from '../../../src/config/schema-parts.js';

const messages = (v: unknown): string[] => redisSchema.safeParse(v).error?.issues.map((i) => i.message) ?? [];

describe('redis part', () => {
  it('accepts redis://, rediss:// and unix:// URLs, or false; optional defaults to false', () => {
    expect(redisSchema.parse({ url: 'redis://127.0.0.1:6379/0' })).toEqual({ url: 'redis://127.0.0.1:6379/0', optional: false });
    expect(redisSchema.safeParse({ url: 'rediss://cache.example:6380' }).success).toBe(true);
    expect(redisSchema.safeParse({ url: 'unix:///run/redis/redis.sock' }).success).toBe(true);
    expect(redisSchema.parse(false)).toBe(false);
    expect(redisSchema.safeParse(true).success).toBe(false);
  });

  it('refuses a password in the URL (it would reach the YAML and argv), naming where it belongs', () => {
    expect(messages({ url: 'redis://default:hunter2@127.0.0.1:6379' })).toContain(
      'remove the password from the URL and put it in redis.passwordFile (a file of mode 0600)',
    );
  });

  it('refuses other schemes, non-URLs, relative files and unknown keys', () => {
    expect(messages({ url: 'http://127.0.0.1:6379' })).toContain('expected redis://, rediss:// or unix://, not http://');
    expect(messages({ url: '127.0.0.1:6379' })).toEqual(['expected a URL like redis://127.0.0.1:6379/0 or unix:///run/redis/redis.sock']);
    expect(messages({ url: 'not a url' })).toContain('expected a URL like redis://127.0.0.1:6379/0 or unix:///run/redis/redis.sock');
    expect(redisSchema.safeParse({ url: 'redis://h', passwordFile: 'pw.txt' }).success).toBe(false);
    expect(redisSchema.safeParse({ url: 'redis://h', password: 'x' }).success).toBe(false);
  });
});

describe('secrets part', () => {
  it('takes an absolute file or false', () => {
    expect(secretsSchema.parse({ file: '/home/mastodon/live/.env.production' })).toEqual({
      file: '/home/mastodon/live/.env.production',
      optional: false,
    });
    expect(secretsSchema.parse(false)).toBe(false);
    expect(secretsSchema.safeParse({ file: '.env.production' }).success).toBe(false);
  });
});
