import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketStorage, MULTIPART_PART_BYTES, PART_BYTES, partSizeFor } from '../../../src/offsite/bucket.js';
import { s3ClientFor } from '../../../src/offsite/client.js';
import { startS3, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

const ID = '2026-12-01T10-00-00Z';

// The bucket as a place for snapshots, against a real s3rver on loopback.
describe('bucketStorage', () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket('bkt-store');
  }, 30_000);
  afterAll(() => s3.stop());

  const storage = (lock?: { mode: 'governance' | 'compliance'; days: number }) =>
    bucketStorage(
      s3ClientFor({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true }, S3RVER_KEYS),
      { bucket: 'bkt-store', prefix: 'pf/' },
      { describe: 'offsite target t', lock, now: () => new Date('2026-12-01T12:00:00Z') },
    );

  it('writes small files with the manifest hash and big ones in parts, lists them and reads them back byte for byte', async () => {
    const st = storage({ mode: 'compliance', days: 7 });
    const small = Buffer.from('{"manifest":1}');
    const big = randomBytes(PART_BYTES * 2 + 1234);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    await st.write(ID, 'database.pgdump.gpg', Readable.from([big]), { bytes: big.length, sha256: sha(big) });
    await st.write(ID, 'manifest.json', Readable.from([small]), { bytes: small.length, sha256: sha(small) });
    await st.write(undefined, 'RESTORE.md', Readable.from([Buffer.from('# restore')]), { bytes: 9 });
    const listing = await st.list();
    expect(listing.snapshots).toEqual([
      {
        id: ID,
        complete: true,
        files: expect.arrayContaining([
          { name: 'database.pgdump.gpg', bytes: big.length },
          { name: 'manifest.json', bytes: small.length },
        ]),
      },
    ]);
    expect(listing.rootFiles).toEqual([{ name: 'RESTORE.md', bytes: 9 }]);
    const back = Buffer.concat(await (await st.read(ID, 'database.pgdump.gpg')).toArray());
    expect(sha(back)).toBe(sha(big));
    await expect(st.readSmall(ID, 'database.pgdump.gpg', 1024)).rejects.toThrow(/larger than 1024 bytes/);
    // Every object carried the lock, until 7 days after "now"; the small one its SHA-256 for the server to check.
    const puts = s3.requests().filter((r) => r.method === 'PUT' && r.path.includes(ID));
    expect(puts.length).toBeGreaterThan(0);
    const creates = [
      ...puts.filter((r) => !r.query.includes('partNumber')),
      ...s3.requests().filter((r) => r.method === 'POST' && r.query.startsWith('?uploads')),
    ];
    expect(creates.filter((r) => r.method === 'POST')).toHaveLength(1);
    for (const r of creates)
      expect(r.headers).toMatchObject({
        'x-amz-object-lock-mode': 'COMPLIANCE',
        'x-amz-object-lock-retain-until-date': '2026-12-08T12:00:00Z',
      });
    const manifestPut = puts.find((r) => r.path.endsWith('/manifest.json'));
    expect(manifestPut?.headers['x-amz-checksum-sha256']).toBe(Buffer.from(sha(small), 'hex').toString('base64'));
  }, 60_000);

  it('a hostile listing (.., a foreign key, another prefix) is reported as foreign, never as a snapshot', async () => {
    const c = s3.client();
    for (const Key of ['pf/../etc/passwd', 'pf/not-a-snapshot/x', `pf/${ID}/../../x`, `pf/${ID}/.hidden`, 'pf/notes.txt']) {
      await c.send(new PutObjectCommand({ Bucket: 'bkt-store', Key, Body: 'x' })).catch(() => undefined);
    }
    const listing = await storage().list();
    expect(listing.snapshots.map((s) => s.id)).toEqual([ID]);
    expect(listing.snapshots[0]!.files.map((f) => f.name).sort()).toEqual(['database.pgdump.gpg', 'manifest.json']);
    expect(listing.foreign.length).toBeGreaterThanOrEqual(2);
    c.destroy();
  }, 60_000);

  it('parts stay small for memory, and grow for a huge file so it needs at most 9,000 (S3 allows 10,000)', () => {
    expect(partSizeFor(PART_BYTES + 1)).toBe(MULTIPART_PART_BYTES);
    expect(partSizeFor(40 * 1024 ** 3)).toBe(MULTIPART_PART_BYTES);
    expect(partSizeFor(50 * 1024 ** 3)).toBeGreaterThan(MULTIPART_PART_BYTES);
    for (const bytes of [100 * 1024 ** 3, 2 * 1024 ** 4]) expect(Math.ceil(bytes / partSizeFor(bytes))).toBeLessThanOrEqual(9_000);
  });
});
