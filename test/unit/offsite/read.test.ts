import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { bucketStorage } from '../../../src/offsite/bucket.js';
import { s3ClientFor } from '../../../src/offsite/client.js';
import { chainOf, fetchSnapshots, findBucketSnapshot, pickBucketSnapshot, readBucketSnapshots } from '../../../src/offsite/read.js';
import { runBucketCheck } from '../../../src/ops/check-bucket.js';
import { openVault } from '../../../src/vault/layout.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { startS3Bucket, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

const BUCKET = 'bkt-read';

// A bucket read as a vault, against a real s3rver: a delta chain, an unrelated full snapshot, an unfinished upload.
describe('offsite/read', () => {
  let s3: S3Server;
  let work: string;
  let full: Manifest;
  let base: Manifest;
  let d1: Manifest;
  let d2: Manifest;
  const storage = (prefix: string) =>
    bucketStorage(
      s3ClientFor({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true }, S3RVER_KEYS),
      { bucket: BUCKET, prefix },
      {
        describe: `s3://${BUCKET}/${prefix}`,
      },
    );
  const config = (): Config => ({ role: 'receiver', configPath: 'test', vault: { dir: work } }) as Config;
  const flags = (prefix: string) => ({ vault: `s3://${BUCKET}/${prefix}`, endpoint: s3.endpoint, pathStyle: true });

  /** Uploads every snapshot folder of `vault` under `prefix`, manifest last. */
  async function push(vault: string, prefix: string): Promise<void> {
    const st = storage(prefix);
    for (const id of readdirSync(vault)) {
      const names = readdirSync(path.join(vault, id)).sort((a, b) => Number(a === 'manifest.json') - Number(b === 'manifest.json'));
      for (const name of names) {
        const body = readFileSync(path.join(vault, id, name));
        await st.write(id, name, Readable.from([body]), { bytes: body.length });
      }
    }
  }

  beforeAll(async () => {
    s3 = await startS3Bucket(BUCKET);
    work = mkdtempSync(path.join(tmpdir(), 'permafrost-read-'));
    const vault = path.join(work, 'vault');
    full = fakeSnapshot(vault, '2026-12-01T09:00:00Z');
    base = fakeSnapshot(vault, '2026-12-01T10:00:00Z', null);
    d1 = fakeSnapshot(vault, '2026-12-01T11:00:00Z', base);
    d2 = fakeSnapshot(vault, '2026-12-01T12:00:00Z', d1);
    await push(vault, 'pf/');
    // An upload that did not finish: parts, no manifest.
    await storage('pf/').write('2026-12-01T13-00-00Z', 'delta.sql.gpg', Readable.from([Buffer.from('half')]), { bytes: 4 });
  }, 30_000);
  afterAll(() => {
    s3.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('lists complete snapshots newest first; the unfinished upload apart; latest is the newest complete one and brings its whole chain', async () => {
    const found = await readBucketSnapshots(storage('pf/'));
    expect(found.entries.map((e) => e.id)).toEqual([d2.id, d1.id, base.id, full.id]);
    expect(found.incomplete).toEqual(['2026-12-01T13-00-00Z']);
    const latest = pickBucketSnapshot(found, 'latest', 'b', 'permafrost list');
    expect(latest.id).toBe(d2.id);
    expect(chainOf(latest, found.entries).map((e) => e.id)).toEqual([d2.id, d1.id, base.id]);
    expect(() => findBucketSnapshot(found, '2026-12-01T13-00-00Z', 'b', 'permafrost list')).toThrow(/is incomplete \(no manifest.json/);
    expect(() => findBucketSnapshot(found, '2026-12-01T08-00-00Z', 'b', 'permafrost list')).toThrow(/No snapshot named/);
  });

  it('fetches a delta chain into a folder as the vault held it, byte for byte, and nothing else', async () => {
    const found = await readBucketSnapshots(storage('pf/'));
    const dest = mkdtempSync(path.join(work, 'fetched-'));
    await fetchSnapshots(storage('pf/'), chainOf(found.entries[0]!, found.entries), found.listing, openVault(dest));
    expect(readdirSync(dest).sort()).toEqual([base.id, d1.id, d2.id]);
    for (const id of [base.id, d1.id, d2.id])
      for (const name of readdirSync(path.join(work, 'vault', id)))
        expect(readFileSync(path.join(dest, id, name)).equals(readFileSync(path.join(work, 'vault', id, name)))).toBe(true);
  });

  it("check of the bucket: whole; with the base's manifest gone, the base is no longer counted and each delta of its chain names it as missing", async () => {
    const ok = await runBucketCheck(config(), flags('pf/'), 'all', { readData: true });
    expect(ok.snapshots.map((s) => [s.id, s.ok])).toEqual([
      [d2.id, true],
      [d1.id, true],
      [base.id, true],
      [full.id, true],
    ]);
    expect(ok.warnings).toEqual([expect.stringContaining('2026-12-01T13-00-00Z in s3://bkt-read/pf/ has no manifest.json')]);
    await push(path.join(work, 'vault'), 'cut/');
    const c = s3.client();
    await c.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `cut/${base.id}/manifest.json` }));
    c.destroy();
    const cut = await runBucketCheck(config(), flags('cut/'), 'all');
    expect(cut.ok).toBe(false);
    expect(cut.snapshots.find((s) => s.id === d2.id)?.problems).toEqual([`it needs ${base.id}, which is missing`]);
    expect(cut.snapshots.find((s) => s.id === d1.id)?.problems).toEqual([`it needs ${base.id}, which is missing`]);
    expect(cut.snapshots.find((s) => s.id === full.id)?.ok).toBe(true);
  });
});
