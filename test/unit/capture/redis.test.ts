import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { RdbTrimmer, rdbLengthFromStderr } from '../../../src/capture/redis.js';
import { redisSchema } from '../../../src/config/schema-parts.js';

describe('redis config', () => {
  it.each([
    [false, true],
    [{ url: 'redis://127.0.0.1:6379/0' }, true],
    [{ url: 'unix:///run/redis.sock', passwordFile: '/etc/p', optional: true }, true],
    [{ url: 'redis://:secret@127.0.0.1:6379' }, false],
    [{ url: 'http://127.0.0.1' }, false],
    [{ url: 'redis://127.0.0.1', extra: 1 }, false],
  ])('%o valid: %s', (value, valid) => {
    expect(redisSchema.safeParse(value).success).toBe(valid);
  });

  it('tells the admin to move a password out of the URL', () => {
    const r = redisSchema.safeParse({ url: 'redis://:secret@127.0.0.1:6379' });
    expect(JSON.stringify(r.error?.issues)).toContain('redis.passwordFile');
    expect(JSON.stringify(r.error?.issues)).not.toContain('secret@');
  });
});

describe('RDB length from redis-cli stderr', () => {
  it.each([
    ["SYNC sent to master, writing bytes of bulk transfer until EOF marker to '-'\nTransfer finished with success after 186 bytes\n", 186],
    ["SYNC sent to master, writing 2048 bytes to '-'\nTransfer finished with success.\n", 2048],
    ['AUTH failed: WRONGPASS', null],
  ])('%j → %s', (stderr, n) => {
    expect(rdbLengthFromStderr(stderr)).toBe(n);
  });
});

describe('RdbTrimmer', () => {
  const rdb = `REDIS0010${'x'.repeat(150)}`;
  const marker = 'm'.repeat(40);

  async function run(chunks: string[], length: number): Promise<string> {
    return text(Readable.from(chunks.map((c) => Buffer.from(c))).pipe(new RdbTrimmer(() => Promise.resolve(length))));
  }

  it('drops the 40-byte end marker of a diskless transfer, however the chunks fall', async () => {
    const all = rdb + marker;
    expect(await run([all], rdb.length)).toBe(rdb);
    expect(await run([all.slice(0, 3), all.slice(3, 170), all.slice(170)], rdb.length)).toBe(rdb);
    expect(await run(all.split(''), rdb.length)).toBe(rdb);
  });

  it('passes a disk-based transfer through whole', async () => {
    expect(await run([rdb.slice(0, 20), rdb.slice(20)], rdb.length)).toBe(rdb);
  });

  it('fails on data that is not an RDB, and on a short transfer', async () => {
    await expect(run(['HELLO WORLD'], 11)).rejects.toThrow(/no REDIS header/);
    await expect(run([rdb], rdb.length + 100)).rejects.toThrow(/reported an RDB of/);
  });
});
