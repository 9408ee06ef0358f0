import { describe, expect, it } from 'vitest';
import { notifySchema, verifySchema, webSchema } from '../../../src/config/schema-watch.js';

const bot = { server: 'https://mastodon.example', tokenFile: '/etc/permafrost/bot-token', to: '@admin' };
const messages = (v: unknown): string[] => notifySchema.safeParse(v).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];

describe('notify section', () => {
  it('fills retry defaults', () => {
    expect(notifySchema.parse({})).toEqual({ retries: 3, backoffMs: 2000, timeoutMs: 10_000 });
  });

  it('sends the bot token over https, or plain http only to this machine', () => {
    expect(messages({ mastodon: bot })).toEqual([]);
    expect(messages({ mastodon: { ...bot, server: 'http://127.0.0.1:3000' } })).toEqual([]);
    expect(messages({ mastodon: { ...bot, server: 'http://[::1]:3000' } })).toEqual([]);
    expect(messages({ mastodon: { ...bot, server: 'http://mastodon.example' } })).toEqual([
      'mastodon.server: plain http:// would send the bot token unencrypted; use https:// (http:// only to 127.0.0.1, ::1 or localhost)',
    ]);
    expect(messages({ mastodon: { ...bot, server: 'http://127.0.0.1.evil.example' } })).toHaveLength(1);
    expect(messages({ mastodon: { ...bot, server: 'not a url' } })).toEqual(['mastodon.server: expected an http:// or https:// URL']);
  });

  it('refuses a token inline, a relative token file, a malformed account and other URL schemes', () => {
    expect(messages({ mastodon: { ...bot, token: 'abc' } })).toHaveLength(1);
    expect(messages({ mastodon: { ...bot, tokenFile: 'token' } })).toEqual(['mastodon.tokenFile: expected an absolute path']);
    expect(messages({ mastodon: { ...bot, to: 'admin; DROP' } })).toEqual([
      'mastodon.to: expected an account like @admin or @admin@example.org',
    ]);
    expect(messages({ mastodon: { ...bot, to: '@admin@example.org' } })).toEqual([]);
    expect(messages({ webhook: { url: 'file:///etc/passwd' } })).toEqual(['webhook.url: expected an http:// or https:// URL']);
    expect(messages({ retries: 11 })).toHaveLength(1);
    expect(messages({ timeoutMs: 50 })).toHaveLength(1);
  });
});

describe('web and verify sections', () => {
  it('web listens on loopback by default and takes host:port only', () => {
    expect(webSchema.parse({})).toEqual({ listen: '127.0.0.1:9580' });
    expect(webSchema.safeParse({ listen: '[::1]:9580' }).success).toBe(true);
    expect(webSchema.safeParse({ listen: '9580' }).success).toBe(false);
    expect(webSchema.safeParse({ listen: 'http://0.0.0.0:9580' }).success).toBe(false);
  });

  it('verify takes a plain scratch database name only', () => {
    expect(verifySchema.safeParse({ database: 'permafrost_verify' }).success).toBe(true);
    expect(verifySchema.safeParse({ database: 'x"; DROP DATABASE mastodon; --' }).success).toBe(false);
    expect(verifySchema.safeParse({ database: '-flag' }).success).toBe(false);
    expect(verifySchema.safeParse({ connection: { port: 70000 } }).success).toBe(false);
    expect(verifySchema.safeParse({ jobs: 0 }).success).toBe(false);
  });
});
