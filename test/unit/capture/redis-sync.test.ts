/**
 * The SYNC client's strict parsing and its ends, against a scripted socket server: a real Redis
 * cannot send a malformed bulk length or drop the link mid-RDB on demand (the e2e tests in
 * test/e2e/backup/redis-sync.test.ts use a real Redis for everything it can show).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import { openRedisSync } from '../../../src/capture/redis-sync.js';
import type { RedisServer } from '../../../src/tools/redis-cli.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const CONFIG_REPLY = '*2\r\n$4\r\nsave\r\n$6\r\n3600 1\r\n';

/** A socket server that answers CONFIG GET save with a schedule and SYNC with `onSync`. */
async function scripted(onSync: (socket: net.Socket) => void): Promise<RedisServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-sync-'));
  const sock = path.join(dir, 's.sock');
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('data', (d) => {
      const text = d.toString('latin1');
      if (text.includes('CONFIG')) socket.write(CONFIG_REPLY);
      else if (text.includes('SYNC')) onSync(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  cleanups.push(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: `unix://${sock}`, password: undefined, optional: false };
}

const RDB = Buffer.concat([Buffer.from('REDIS0011'), Buffer.alloc(3000, 7), Buffer.from([0xff, 1, 2, 3, 4, 5, 6, 7, 8])]);

describe('openRedisSync', () => {
  it('skips keep-alives, passes on exactly the announced bytes and drops the replication stream after them', async () => {
    const r = await scripted((s) => {
      s.write('\n\n');
      setTimeout(() => s.write(Buffer.concat([Buffer.from(`$${RDB.length}\r\n`), RDB.subarray(0, 100)])), 20);
      setTimeout(() => s.write(Buffer.concat([RDB.subarray(100), Buffer.from('*1\r\n$4\r\nPING\r\n')])), 40);
    });
    const got = await openRedisSync(r, new AbortController().signal);
    if (!('stdout' in got)) throw new Error(got.fallback);
    expect(got.schedule).toBe('3600 1');
    expect((await buffer(got.stdout)).equals(RDB)).toBe(true);
  });

  it.each([
    ['$12x\r\n', /SYNC answered "\$12x" instead of a bulk length/],
    ['$EOF:0123456789012345678901234567890123456789\r\n', /instead of a bulk length/],
    ['-ERR no SYNC here\r\n', /SYNC was refused \(ERR no SYNC here\)/],
    ['$20\r\nNOTRDB-AT-ALL-xxxxxx', /no REDIS header/],
  ])('a reply of %j before the first RDB byte is a fallback with its reason', async (reply, reason) => {
    const r = await scripted((s) => s.write(reply));
    const got = await openRedisSync(r, new AbortController().signal);
    expect('fallback' in got && got.fallback).toMatch(reason);
  });

  it('a link lost after the first RDB bytes is an error naming how far it got, not a short file', async () => {
    const r = await scripted((s) => {
      s.write(Buffer.concat([Buffer.from(`$${RDB.length}\r\n`), RDB.subarray(0, 1000)]));
      setTimeout(() => s.destroy(), 30);
    });
    const got = await openRedisSync(r, new AbortController().signal);
    if (!('stdout' in got)) throw new Error(got.fallback);
    await expect(buffer(got.stdout)).rejects.toThrow(`Redis closed the connection after 1000 of ${RDB.length} RDB bytes`);
  });

  it("the run's stop ends a SYNC that only gets keep-alives", async () => {
    let timer: NodeJS.Timeout | undefined;
    const r = await scripted((s) => {
      timer = setInterval(() => s.write('\n'), 10);
      s.on('close', () => clearInterval(timer));
    });
    cleanups.push(() => clearInterval(timer));
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stopped by test')), 150);
    const started = Date.now();
    await expect(openRedisSync(r, ac.signal)).rejects.toThrow('stopped by test');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
