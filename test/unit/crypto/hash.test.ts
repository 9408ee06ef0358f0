import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { HashCounter, sha256File } from '../../../src/crypto/hash.js';

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
