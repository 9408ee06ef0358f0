import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermafrostError, UserError } from '../../../src/errors.js';
import { s3ClientFor } from '../../../src/offsite/client.js';
import { lockedUntil, lockMissingError, objectLockEnabled, probeBucket } from '../../../src/offsite/lock-config.js';
import { deadPort } from '../../harness/http-sinks.js';
import { startS3, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

const WHERE = 'offsite target t (s3://bkt-lock/pf/)';

// Against a real s3rver on loopback (the harness's proxy answers GET ?object-lock, which s3rver lacks).
describe('Object Lock and reachability of a bucket', () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3();
    await s3.createBucket('bkt-lock');
    await s3.createBucket('bkt-plain');
  }, 30_000);
  afterAll(() => s3.stop());

  const client = (keys: { accessKeyId: string; secretAccessKey: string } = S3RVER_KEYS) =>
    s3ClientFor({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true }, keys);
  const fail = (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      () => null,
      (e: unknown) => e,
    );

  it('objectLockEnabled: true for a bucket made with it, false for one without (not an error)', async () => {
    s3.setFaults({ lockEnabled: ['bkt-lock'] });
    const c = client();
    expect(await objectLockEnabled(c, { bucket: 'bkt-lock', prefix: 'pf/' }, WHERE)).toBe(true);
    expect(await objectLockEnabled(c, { bucket: 'bkt-plain', prefix: '' }, WHERE)).toBe(false);
    c.destroy();
  });

  it('probeBucket: wrong keys are a sentence naming the credentials and what was being done (exit 2)', async () => {
    s3.setFaults({});
    const c = client({ accessKeyId: 'WRONG', secretAccessKey: 'WRONG' });
    const probe = await fail(probeBucket(c, { bucket: 'bkt-plain', prefix: '' }, WHERE));
    expect(probe).toBeInstanceOf(UserError);
    expect((probe as Error).message).toMatch(
      /^offsite target t \(s3:\/\/bkt-lock\/pf\/\) refused the credentials \(InvalidAccessKeyId\) while listing the bucket; check the key files/,
    );
    c.destroy();
  });

  it('objectLockEnabled: a server that cannot be reached is a connection error, never "no lock"', async () => {
    const c = s3ClientFor({ endpoint: `http://127.0.0.1:${await deadPort()}`, region: 'us-east-1', pathStyle: true }, S3RVER_KEYS);
    const err = await fail(objectLockEnabled(c, { bucket: 'bkt-lock', prefix: '' }, WHERE));
    expect(err).toBeInstanceOf(PermafrostError);
    expect((err as PermafrostError).kind).toBe('connection');
    expect((err as Error).message).toMatch(
      /could not be reached \(ECONNREFUSED\) while reading the bucket\u2019s Object Lock configuration; check offsite.endpoint/,
    );
    c.destroy();
  });

  it('probeBucket: passes on a bucket that is there, names a missing one (exit 2)', async () => {
    const c = client();
    await probeBucket(c, { bucket: 'bkt-plain', prefix: 'pf/' }, WHERE);
    const err = await fail(probeBucket(c, { bucket: 'bkt-none', prefix: '' }, WHERE));
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `${WHERE}: the bucket does not exist; create it (with Object Lock if offsite.lock is set) or fix offsite.bucket.`,
    );
    c.destroy();
  });

  it('lockMissingError: one sentence, exit 2, naming the target, the bucket and both ways out', () => {
    const err = lockMissingError(WHERE, 'bkt-plain');
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(
      `${WHERE}: offsite.lock is set but bucket bkt-plain has no Object Lock, so nothing uploaded could be protected; ` +
        'create a new bucket with Object Lock enabled (it cannot be turned on for most existing buckets), or remove lock from the target.',
    );
  });

  it('lockedUntil: without a reported date, upload time plus the configured days; no lock configured: null', async () => {
    const c = client();
    const loc = { bucket: 'bkt-plain', prefix: 'pf/' };
    const before = Date.now();
    await c.send(new PutObjectCommand({ Bucket: 'bkt-plain', Key: 'pf/a', Body: 'x' }));
    const until = await lockedUntil(c, loc, 'pf/a', 7, WHERE);
    expect(until).toBeInstanceOf(Date);
    // LastModified has whole seconds.
    const days7 = 7 * 86_400_000;
    expect(until!.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + days7 - 1000);
    expect(until!.getTime()).toBeLessThanOrEqual(Date.now() + days7);
    expect(await lockedUntil(c, loc, 'pf/a', undefined, WHERE)).toBeNull();
    c.destroy();
  });

  it('lockedUntil: a key that is not there is an error naming it, not "unlocked"', async () => {
    const c = client();
    const err = await fail(lockedUntil(c, { bucket: 'bkt-plain', prefix: '' }, 'pf/missing', 7, WHERE));
    expect(err).toBeInstanceOf(PermafrostError);
    expect((err as Error).message).toMatch(/^offsite target t \(s3:\/\/bkt-lock\/pf\/\) failed while reading pf\/missing: /);
    c.destroy();
  });
});
