import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { bucketStorage } from '../../../src/offsite/bucket.js';
import { s3ClientFor } from '../../../src/offsite/client.js';
import { runBucketCheck } from '../../../src/ops/check-bucket.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { startS3Bucket, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

const BUCKET = 'bkt-check-bucket';

// The bucket side of `check` (--vault s3://…): which snapshots it picks, what it says of an
// unfinished upload, and that it records nothing. The verdicts themselves are ops/check.ts's,
// compared with a folder's in test/unit/ops/check.test.ts.
describe('runBucketCheck', () => {
  let s3: S3Server;
  let work: string;
  let done: Manifest;
  let unfinished: Manifest;
  const config = (dir: string): Config => ({ role: 'receiver', configPath: 'test', vault: { dir } }) as Config;
  const flags = { vault: `s3://${BUCKET}/pf/`, endpoint: '', pathStyle: true };

  beforeAll(async () => {
    s3 = await startS3Bucket(BUCKET);
    flags.endpoint = s3.endpoint;
    work = mkdtempSync(path.join(tmpdir(), 'permafrost-check-bucket-'));
    const vault = path.join(work, 'vault');
    done = fakeSnapshot(vault, '2026-12-03T08:00:00Z');
    unfinished = fakeSnapshot(vault, '2026-12-03T09:00:00Z');
    const st = bucketStorage(
      s3ClientFor({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true }, S3RVER_KEYS),
      { bucket: BUCKET, prefix: 'pf/' },
      { describe: `s3://${BUCKET}/pf/` },
    );
    for (const m of [done, unfinished]) {
      for (const name of readdirSync(path.join(vault, m.id))) {
        // The unfinished upload never got its manifest (a push cut off before its last file).
        if (m === unfinished && name === 'manifest.json') continue;
        const body = readFileSync(path.join(vault, m.id, name));
        await st.write(m.id, name, Readable.from([body]), { bytes: body.length });
      }
    }
  }, 60_000);
  afterAll(() => {
    s3.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('all: only complete snapshots are judged; the folder of the config is left as it was', async () => {
    const empty = mkdtempSync(path.join(work, 'cfg-'));
    const r = await runBucketCheck(config(empty), flags, 'all', { readData: true });
    expect(r.snapshots.map((s) => [s.id, s.ok])).toEqual([[done.id, true]]);
    expect(r.ok).toBe(true);
    expect(r.describe).toContain(`s3://${BUCKET}/pf/`);
    expect(readdirSync(empty)).toEqual([]);
  });

  it('one snapshot by id; an unfinished upload by id is a usage error that says why it never counts', async () => {
    const one = await runBucketCheck(config(work), flags, done.id);
    expect(one.snapshots.map((s) => s.id)).toEqual([done.id]);
    const err = await runBucketCheck(config(work), flags, unfinished.id).then(
      () => null,
      (e: unknown) => e as Error & { exitCode: number },
    );
    expect(err?.exitCode).toBe(2);
    expect(err?.message).toMatch(new RegExp(`Snapshot ${unfinished.id} in .* is incomplete \\(no manifest.json`));
  });
});
