import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { feedFile, HashCounter, sha256File } from '../../../src/crypto/hash.js';

const dir = mkdtempSync(path.join(tmpdir(), 'permafrost-hash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('HashCounter', () => {
  it('passes every byte through unchanged, counts them and hashes them (SHA-256 hex)', async () => {
    const chunks = [Buffer.from('abc'), Buffer.alloc(70_000, 1), Buffer.from('xyz')];
    const all = Buffer.concat(chunks);
    const out: Buffer[] = [];
    const hasher = new HashCounter();
    await pipeline(
      Readable.from(chunks),
      hasher,
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(c);
          cb();
        },
      }),
    );
    expect(Buffer.concat(out).equals(all)).toBe(true);
    expect(hasher.bytes).toBe(all.length);
    expect(hasher.sha256()).toBe(sha(all));
    // Asked twice (manifest entry and log line): the same digest, not a crash of a finalised hash.
    expect(hasher.sha256()).toBe(sha(all));
  });

  it('of nothing: 0 bytes and the SHA-256 of the empty string', async () => {
    const hasher = new HashCounter();
    hasher.end();
    await hasher.toArray();
    expect(hasher.bytes).toBe(0);
    expect(hasher.sha256()).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('sha256File', () => {
  it('hashes a file larger than one 1 MiB read chunk whole, and says its size', async () => {
    const data = Buffer.alloc(3 * 2 ** 20 + 17);
    for (let i = 0; i < data.length; i += 4096) data[i] = i % 251;
    const file = path.join(dir, 'big');
    writeFileSync(file, data);
    expect(await sha256File(file)).toEqual({ sha256: sha(data), bytes: data.length });
  });

  it('an empty file, and a missing one rejects (ENOENT) instead of hashing nothing', async () => {
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '');
    expect(await sha256File(empty)).toEqual({ sha256: sha(Buffer.alloc(0)), bytes: 0 });
    await expect(sha256File(path.join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('feedFile', () => {
  it('the program exiting after the last write and before the input ended: rejects, never hangs', async () => {
    // A FIFO as the file: the test decides when its end is read. The program takes nothing and exits;
    // node destroys its stdin then (no error: no write failed), before feedFile ends it.
    const fifo = path.join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const child = spawn('sh', ['-c', 'sleep 0.2'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const fed = feedFile(fifo, child.stdin).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    const w = await open(fifo, 'w');
    await w.write(Buffer.from('some ciphertext'));
    await exited;
    await new Promise((r) => setTimeout(r, 50));
    expect(child.stdin.destroyed).toBe(true);
    await w.close();
    const outcome = await Promise.race([fed, new Promise((r) => setTimeout(() => r('still pending after 5 s'), 5000))]);
    expect(outcome).toBeInstanceOf(Error);
  }, 20_000);
});
