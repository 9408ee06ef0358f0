import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeadBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { s3ClientFor, s3Error } from '../../../src/offsite/client.js';
import { startS3, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

// Against a real s3rver on loopback: what each failure becomes (one sentence, the kind and its exit code).
describe('s3 client and its errors', () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket('bkt-ok');
  }, 30_000);
  afterAll(() => s3.stop());

  const target = () => ({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true });
  const fail = async (p: Promise<unknown>) =>
    p.then(
      () => null,
      (e: unknown) => e,
    );

  it('puts with the right keys', async () => {
    const c = s3ClientFor(target(), S3RVER_KEYS);
    await c.send(new PutObjectCommand({ Bucket: 'bkt-ok', Key: 'a', Body: 'x' }));
    c.destroy();
  });

  it('a missing bucket, wrong keys and an unreachable endpoint each name what to fix', async () => {
    const c = s3ClientFor(target(), S3RVER_KEYS);
    const missing = s3Error(
      await fail(c.send(new PutObjectCommand({ Bucket: 'no-such', Key: 'a', Body: 'x' }))),
      'offsite target t',
      'uploading',
    );
    expect([missing.kind, missing.exitCode, missing.message]).toEqual(['user', 2, expect.stringMatching(/bucket does not exist/)]);
    const wrong = s3ClientFor(target(), { accessKeyId: 'WRONG', secretAccessKey: 'nope-secret' });
    const denied = s3Error(await fail(wrong.send(new HeadBucketCommand({ Bucket: 'bkt-ok' }))), 'offsite target t', 'listing');
    expect([denied.kind, denied.exitCode]).toEqual(['user', 2]);
    expect(denied.message).toMatch(/refused the credentials/);
    expect(denied.message).not.toContain('nope-secret');
    const closed = s3ClientFor({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', pathStyle: true }, S3RVER_KEYS);
    const down = s3Error(await fail(closed.send(new HeadBucketCommand({ Bucket: 'bkt-ok' }))), 'offsite target t', 'listing');
    expect([down.kind, down.exitCode, down.message]).toEqual([
      'connection',
      1,
      expect.stringMatching(/could not be reached \(ECONNREFUSED\)/),
    ]);
    for (const x of [c, wrong, closed]) x.destroy();
  }, 60_000);

  it('throttling (503 SlowDown) is retried by the SDK and the request then succeeds', async () => {
    s3.setFaults({ slowDown: 2 });
    const c = s3ClientFor(target(), S3RVER_KEYS);
    await c.send(new PutObjectCommand({ Bucket: 'bkt-ok', Key: 'after-slowdown', Body: 'y' }));
    expect(s3.requests().filter((r) => r.status === 503)).toHaveLength(2);
    c.destroy();
  }, 60_000);
});
