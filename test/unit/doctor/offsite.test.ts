import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkOffsiteTarget } from '../../../src/doctor/offsite.js';
import { offsiteTargetSchema, type OffsiteTarget } from '../../../src/config/schema-offsite.js';
import { s3ClientFor, type S3Keys } from '../../../src/offsite/client.js';
import { describeTarget, locationOf } from '../../../src/offsite/target.js';
import { deadPort } from '../../harness/http-sinks.js';
import { startS3, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

// A real S3-compatible server (s3rver, harness/s3.ts); its fault switch answers GET ?object-lock as enabled.
let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket('plain');
  await s3.createBucket('locked');
  s3.setFaults({ lockEnabled: ['locked'] });
}, 60_000);
afterAll(() => s3?.stop());

function target(over: Record<string, unknown> = {}): OffsiteTarget {
  return offsiteTargetSchema.parse({ name: 'b2', endpoint: s3.endpoint, bucket: 'plain', pathStyle: true, ...over });
}

function check(t: OffsiteTarget, keys: S3Keys = S3RVER_KEYS) {
  const location = locationOf(t);
  return checkOffsiteTarget({ target: t, client: s3ClientFor(t, keys), location, describe: describeTarget(t.name, location) });
}

describe('checkOffsiteTarget (doctor: one line per offsite target)', () => {
  it('reachable, keys accepted, bucket there, no lock: OK, saying what no lock means', async () => {
    const line = await check(target());
    expect(line).toEqual({
      check: 'offsite b2',
      status: 'ok',
      message: expect.stringContaining(
        'reachable, keys accepted, bucket there (no lock: a stolen server key can delete the copies)',
      ) as string,
    });
  });

  it('lock set and the bucket has Object Lock: OK naming mode and days', async () => {
    const line = await check(target({ bucket: 'locked', lock: { mode: 'governance', days: 30 } }));
    expect(line.status).toBe('ok');
    expect(line.message).toContain('bucket there with Object Lock (governance, 30 days on every object)');
  });

  it('lock set but the bucket has none: FAIL, pushes would be refused; the fix is a new bucket', async () => {
    const line = await check(target({ lock: { mode: 'compliance', days: 7 } }));
    expect(line).toMatchObject({ status: 'fail' });
    expect(line.message).toContain('offsite.lock is set (compliance, 7 days) but the bucket has no Object Lock, so pushes are refused');
    expect(line.fix).toMatch(/^create a bucket with Object Lock enabled/);
  });

  it('each way of not reaching the bucket gets its own fix: no bucket, wrong keys, nothing listening', async () => {
    const missing = await check(target({ bucket: 'absent' }));
    expect(missing).toMatchObject({
      status: 'fail',
      fix: 'create the bucket (with Object Lock enabled when offsite.lock is set) or correct offsite.bucket',
    });
    const keys = await check(target(), { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' });
    expect(keys.status).toBe('fail');
    expect(keys.fix).toMatch(/^check the key files named in offsite.credentials/);
    const down = await check(target({ endpoint: `http://127.0.0.1:${await deadPort()}` }));
    expect(down).toMatchObject({
      status: 'fail',
      fix: 'check offsite.endpoint (scheme, host, port) and that this host can reach it (firewall, DNS)',
    });
  }, 60_000);
});
