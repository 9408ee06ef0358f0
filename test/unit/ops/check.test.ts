import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../../src/config/schema.js';
import { bucketStorage } from '../../../src/offsite/bucket.js';
import { s3ClientFor } from '../../../src/offsite/client.js';
import { runBucketCheck } from '../../../src/ops/check-bucket.js';
import { checkFailed, runVaultCheck, type CheckResult } from '../../../src/ops/check.js';
import { readCheckState } from '../../../src/vault/check.js';
import { openVault } from '../../../src/vault/layout.js';
import type { Manifest } from '../../../src/vault/manifest.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { startS3Bucket, S3RVER_KEYS, type S3Server } from '../../harness/s3.js';

const BUCKET = 'bkt-check';

/** Each snapshot's verdict as `[id, ok, problems]`. */
const verdicts = (r: CheckResult) => r.snapshots.map((s) => [s.id, s.ok, s.problems] as const);

// The one check (ops/check.ts runCheck) over a vault folder and over a bucket holding the same damaged snapshots.
describe('check (in process): a vault folder and a bucket judged by one comparison', () => {
  let s3: S3Server;
  let work: string;
  let vault: string;
  let whole: Manifest;
  let cut: Manifest;
  let extra: Manifest;
  let base: Manifest;
  let delta: Manifest;
  let orphan: Manifest;
  const config = (dir: string): Config => ({ role: 'receiver', configPath: 'test', vault: { dir } }) as Config;
  const flags = (prefix: string) => ({ vault: `s3://${BUCKET}/${prefix}`, endpoint: s3.endpoint, pathStyle: true });

  /** Uploads every snapshot folder of `dir` under `prefix` as push would (manifest last); only regular files. */
  async function push(dir: string, prefix: string): Promise<void> {
    const st = bucketStorage(
      s3ClientFor({ endpoint: s3.endpoint, region: 'us-east-1', pathStyle: true }, S3RVER_KEYS),
      { bucket: BUCKET, prefix },
      { describe: `s3://${BUCKET}/${prefix}` },
    );
    for (const id of readdirSync(dir)) {
      const names = readdirSync(path.join(dir, id)).sort((a, b) => Number(a === 'manifest.json') - Number(b === 'manifest.json'));
      for (const name of names) {
        const body = readFileSync(path.join(dir, id, name));
        await st.write(id, name, Readable.from([body]), { bytes: body.length });
      }
    }
  }

  beforeAll(async () => {
    s3 = await startS3Bucket(BUCKET);
    work = mkdtempSync(path.join(tmpdir(), 'permafrost-check-'));
    vault = path.join(work, 'vault');
    whole = fakeSnapshot(vault, '2026-12-01T08:00:00Z');
    cut = fakeSnapshot(vault, '2026-12-01T09:00:00Z');
    truncateSync(path.join(vault, cut.id, 'database.pgdump.gpg'), 3);
    extra = fakeSnapshot(vault, '2026-12-01T10:00:00Z');
    writeFileSync(path.join(vault, extra.id, 'notes.txt'), 'not a snapshot file');
    base = fakeSnapshot(vault, '2026-12-01T11:00:00Z', null);
    delta = fakeSnapshot(vault, '2026-12-01T12:00:00Z', base);
    // Same size, other bytes: only a hash finds it.
    const rows = path.join(vault, base.id, 'rows.sql.gpg');
    writeFileSync(rows, readFileSync(rows).reverse());
    const gone = fakeSnapshot(path.join(work, 'elsewhere'), '2026-12-01T06:00:00Z', null);
    orphan = fakeSnapshot(vault, '2026-12-01T07:00:00Z', gone);
    await push(vault, 'pf/');
  }, 60_000);
  afterAll(() => {
    s3.stop();
    rmSync(work, { recursive: true, force: true });
  });

  const expected = () => [
    [delta.id, false, [`it needs ${base.id}, which is damaged`]],
    [base.id, false, ['rows.sql.gpg does not match the SHA-256 in the manifest']],
    [extra.id, false, ['unexpected file notes.txt (not in the manifest)']],
    [cut.id, false, [`database.pgdump.gpg has 3 bytes, the manifest says ${cut.files[0]!.bytes} (truncated)`]],
    [whole.id, true, []],
    [orphan.id, false, [`it needs ${orphan.chain!.reference}, which is missing`]],
  ];

  it('a vault folder: every part hashed, each delta its chain; each verdict recorded', async () => {
    const r = await runVaultCheck(config(vault), 'all');
    expect(verdicts(r)).toEqual(expected());
    expect(r.ok).toBe(false);
    const state = await readCheckState(openVault(vault));
    expect(state.snapshots[whole.id]).toMatchObject({ ok: true, problems: [] });
    expect(state.snapshots[cut.id]?.ok).toBe(false);
    expect(state.lastRun?.failed.sort()).toEqual([delta.id, base.id, extra.id, cut.id, orphan.id].sort());
    expect(checkFailed(r).exitCode).toBe(3);
  });

  it('the same snapshots in a bucket with --read-data: the same verdicts, nothing recorded in any folder', async () => {
    const empty = mkdtempSync(path.join(work, 'cfg-'));
    const r = await runBucketCheck(config(empty), flags('pf/'), 'all', { readData: true });
    expect(verdicts(r)).toEqual(expected());
    expect(readdirSync(empty)).toEqual([]);
  });

  it('a bucket without --read-data compares sizes only: the edited bytes pass, the rest is judged the same', async () => {
    const r = await runBucketCheck(config(work), flags('pf/'), 'all');
    const e = expected().map(([id, ok, problems]) =>
      id === base.id ? [id, true, []] : id === delta.id ? [id, true, []] : [id, ok, problems],
    );
    expect(verdicts(r)).toEqual(e);
  });

  it("a folder's own: an entry that is no file (a link), a file Syncthing still writes, one snapshot by id", async () => {
    const dir = path.join(work, 'own');
    const a = fakeSnapshot(dir, '2026-12-02T08:00:00Z');
    const b = fakeSnapshot(dir, '2026-12-02T09:00:00Z');
    symlinkSync('/etc/hostname', path.join(dir, a.id, 'redis.rdb.gpg'));
    appendFileSync(path.join(dir, b.id, '.syncthing.database.pgdump.gpg.tmp'), 'half');
    const r = await runVaultCheck(config(dir), 'all');
    expect(r.snapshots.find((s) => s.id === a.id)).toMatchObject({
      ok: false,
      problems: ['unexpected entry redis.rdb.gpg (not in the manifest)'],
    });
    expect(r.snapshots.find((s) => s.id === b.id)).toMatchObject({ ok: true, arriving: true });
    // An arriving snapshot is not recorded.
    expect(Object.keys((await readCheckState(openVault(dir))).snapshots)).toEqual([a.id]);
    const one = await runVaultCheck(config(dir), a.id);
    expect(one.snapshots.map((s) => s.id)).toEqual([a.id]);
  });

  it('a folder whose manifest Syncthing is still writing (its temp file there, no manifest.json yet): arriving, not damaged, not recorded; without the temp file, damaged', async () => {
    const dir = path.join(work, 'manifest-arriving');
    const c = fakeSnapshot(dir, '2026-12-02T10:00:00Z');
    const manifest = path.join(dir, c.id, 'manifest.json');
    writeFileSync(path.join(dir, c.id, '.syncthing.manifest.json.tmp'), readFileSync(manifest).subarray(0, 10));
    rmSync(manifest);
    const r = await runVaultCheck(config(dir), 'all');
    expect(r.snapshots.find((s) => s.id === c.id)).toMatchObject({ ok: true, arriving: true });
    expect(r.ok).toBe(true);
    expect(Object.keys((await readCheckState(openVault(dir))).snapshots)).toEqual([]);
    rmSync(path.join(dir, c.id, '.syncthing.manifest.json.tmp'));
    const gone = await runVaultCheck(config(dir), 'all');
    expect(gone.snapshots.find((s) => s.id === c.id)).toMatchObject({ ok: false, arriving: false });
    expect(gone.snapshots.find((s) => s.id === c.id)!.problems[0]).toMatch(/manifest\.json is missing/);
  });

  it('an empty vault folder holds no snapshots, and the check says so without failing', async () => {
    mkdirSync(path.join(work, 'none-here'));
    const r = await runVaultCheck(config(path.join(work, 'none-here')), 'all');
    expect(r).toMatchObject({ ok: true, snapshots: [] });
  });
});
