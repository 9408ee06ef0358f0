import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { bucketStorage } from '../../../src/offsite/bucket.js';
import { s3ClientFor } from '../../../src/offsite/client.js';
import { listBucket, openBucket, withBucketSnapshot } from '../../../src/ops/bucket-vault.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { startS3Bucket, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

const BUCKET = 'bkt-vault';

// A bucket as the vault of list/verify/restore, in process against a real s3rver.
describe('ops/bucket-vault', () => {
  let s3: S3Server;
  let work: string;
  let temp: string;
  let full: Manifest;
  let base: Manifest;
  let delta: Manifest;
  const config = (): Config => ({ role: 'receiver', configPath: 'test', vault: { dir: work, tempDir: temp } }) as Config;
  const flags = { vault: `s3://${BUCKET}/pf/`, endpoint: '', pathStyle: true };

  beforeAll(async () => {
    s3 = await startS3Bucket(BUCKET);
    flags.endpoint = s3.endpoint;
    work = mkdtempSync(path.join(tmpdir(), 'permafrost-bucket-vault-'));
    temp = path.join(work, 'temp');
    mkdirSync(temp);
    const vault = path.join(work, 'vault');
    full = fakeSnapshot(vault, '2026-12-01T09:00:00Z');
    base = fakeSnapshot(vault, '2026-12-01T10:00:00Z', null);
    delta = fakeSnapshot(vault, '2026-12-01T11:00:00Z', base);
    writeFileSync(path.join(vault, 'RESTORE.md'), '# restore\n');
    const st = bucketStorage(
      s3ClientFor({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true }, S3RVER_KEYS),
      { bucket: BUCKET, prefix: 'pf/' },
      { describe: `s3://${BUCKET}/pf/` },
    );
    for (const id of [full.id, base.id, delta.id]) {
      const names = readdirSync(path.join(vault, id)).sort((a, b) => Number(a === 'manifest.json') - Number(b === 'manifest.json'));
      for (const name of names) {
        const body = readFileSync(path.join(vault, id, name));
        await st.write(id, name, Readable.from([body]), { bytes: body.length });
      }
    }
    const runbook = readFileSync(path.join(vault, 'RESTORE.md'));
    await st.write(undefined, 'RESTORE.md', Readable.from([runbook]), { bytes: runbook.length });
  }, 60_000);
  afterAll(() => {
    s3.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('lists the complete snapshots of the bucket, newest first', async () => {
    const listed = await listBucket(config(), flags);
    expect(listed.entries.map((e) => e.id)).toEqual([delta.id, base.id, full.id]);
    expect(listed.describe).toContain(`s3://${BUCKET}/pf/`);
    expect(listed.warnings).toEqual([]);
  });

  it('brings a delta and its chain, with the runbook, into a private vault folder in vault.tempDir, removed afterwards', async () => {
    let seen: { dir: string; names: string[]; runbook: string } | null = null;
    const id = await withBucketSnapshot(config(), flags, 'latest', undefined, (local, picked) => {
      seen = {
        dir: local.vault.dir,
        names: readdirSync(local.vault.dir).sort(),
        runbook: readFileSync(path.join(local.vault.dir, 'RESTORE.md'), 'utf8'),
      };
      return Promise.resolve(picked);
    });
    expect(id).toBe(delta.id);
    expect(seen!.dir.startsWith(temp)).toBe(true);
    expect(seen!.names).toEqual(['RESTORE.md', base.id, delta.id].sort());
    expect(seen!.runbook).toBe('# restore\n');
    expect(existsSync(seen!.dir)).toBe(false);
    expect(readdirSync(temp)).toEqual([]);
  });

  it('refuses --target beside --vault (exit 2)', () => {
    expect(() => openBucket(config(), { ...flags, target: 'b2' })).toThrow(/--target and --vault both name a place to read/);
  });
});
