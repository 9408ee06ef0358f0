import { describe, expect, it } from 'vitest';
import { parseRedisCliVersion, parseRedisUrl, redisCliArgv } from '../../../src/tools/redis-cli.js';

describe('redis-cli argv', () => {
  it.each([
    ['redis://localhost:6379/0', ['redis-cli', '-h', 'localhost', '-p', '6379', '--no-auth-warning', '--rdb', '-']],
    ['redis://10.0.0.5:6380/2', ['redis-cli', '-h', '10.0.0.5', '-p', '6380', '-n', '2', '--no-auth-warning', '--rdb', '-']],
    ['redis://cache', ['redis-cli', '-h', 'cache', '-p', '6379', '--no-auth-warning', '--rdb', '-']],
    ['rediss://alice@[::1]:6379', ['redis-cli', '-h', '::1', '-p', '6379', '--tls', '--user', 'alice', '--no-auth-warning', '--rdb', '-']],
    ['unix:///var/run/redis/redis.sock', ['redis-cli', '-s', '/var/run/redis/redis.sock', '--no-auth-warning', '--rdb', '-']],
    ['unix:///run/r.sock?db=3', ['redis-cli', '-s', '/run/r.sock', '-n', '3', '--no-auth-warning', '--rdb', '-']],
  ])('%s', (url, argv) => {
    expect(redisCliArgv({ url }, ['--rdb', '-'])).toEqual(argv);
  });

  it('uses redis.cli when set', () => {
    expect(redisCliArgv({ url: 'redis://h:1/0', cli: '/opt/redis/bin/redis-cli' }, ['PING'])[0]).toBe('/opt/redis/bin/redis-cli');
  });

  it('parses the pieces of a URL', () => {
    expect(parseRedisUrl('redis://bob@h:7000/4')).toEqual({ host: 'h', port: 7000, db: 4, user: 'bob', tls: false });
  });
});

describe('redis-cli version', () => {
  it.each([
    ['redis-cli 7.0.15\n', [7, 0]],
    ['redis-cli 6.0.16', [6, 0]],
    ['redis-cli 8.2.1 (git:abc)', [8, 2]],
    ['pg_dump (PostgreSQL) 15', null],
  ])('%j → %j', (text, v) => expect(parseRedisCliVersion(text)).toEqual(v));
});
