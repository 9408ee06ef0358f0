import { DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';

/**
 * The same push → list → check --read-data against a real provider (B2, Wasabi, R2, MinIO, AWS),
 * only when one is given in the environment; s3rver stands in for it everywhere else:
 *
 *   PERMAFROST_TEST_S3_BUCKET      a bucket the keys may write and delete in (required)
 *   PERMAFROST_TEST_S3_ENDPOINT    its endpoint (default: AWS)
 *   PERMAFROST_TEST_S3_REGION      default us-east-1
 *   PERMAFROST_TEST_S3_PATH_STYLE  1 for path-style addressing
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   the keys (the standard AWS chain)
 *
 * Everything is written under a fresh prefix and deleted afterwards (no Object Lock: a locked
 * object could not be cleaned up).
 */
const env = process.env;
const bucket = env.PERMAFROST_TEST_S3_BUCKET;
const given = bucket !== undefined && env.AWS_ACCESS_KEY_ID !== undefined && env.AWS_SECRET_ACCESS_KEY !== undefined;

describe.runIf(given)('a real S3 provider (PERMAFROST_TEST_S3_*)', () => {
  const prefix = `permafrost-test/${Date.now()}-${process.pid}/`;
  const target = {
    name: 'real',
    bucket: bucket!,
    prefix,
    region: env.PERMAFROST_TEST_S3_REGION ?? 'us-east-1',
    pathStyle: env.PERMAFROST_TEST_S3_PATH_STYLE === '1',
    ...(env.PERMAFROST_TEST_S3_ENDPOINT ? { endpoint: env.PERMAFROST_TEST_S3_ENDPOINT } : {}),
  };
  let ws: Workspace | undefined;
  afterAll(async () => {
    ws?.cleanup();
    const c = new S3Client({
      region: target.region,
      forcePathStyle: target.pathStyle,
      ...(target.endpoint ? { endpoint: target.endpoint } : {}),
    });
    const listed = await c.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: prefix }));
    const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length > 0) await c.send(new DeleteObjectsCommand({ Bucket: target.bucket, Delete: { Objects: keys } }));
    c.destroy();
  });

  it('push, then list and check --read-data from the bucket alone', async () => {
    ws = makeWorkspace(null, '');
    ws.writeConfig({ extra: { offsite: [target] } });
    const snap = fakeSnapshot(ws.vault, '2026-12-01T10:40:00Z');
    const push = await runCli(['--config', ws.configFile, 'offsite', 'push']);
    expect(push.code, push.stderr).toBe(0);
    const list = await runCli(['--config', ws.configFile, 'list', '--target', 'real']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(snap.id);
    const check = await runCli(['--config', ws.configFile, 'check', '--target', 'real', '--read-data']);
    expect(check.code, check.stderr).toBe(0);
  }, 300_000);
});

describe.skipIf(given)('a real S3 provider', () => {
  it('SKIPPED: no PERMAFROST_TEST_S3_BUCKET and AWS keys in the environment', () => {
    console.log(
      'SKIPPED: the real-provider test (set PERMAFROST_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and PERMAFROST_TEST_S3_ENDPOINT for a non-AWS provider)',
    );
  });
});
