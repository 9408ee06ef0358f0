import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type Workspace } from '../../harness/env.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { startS3, type S3Server } from '../../harness/s3.js';
import type { OffsiteState, OffsiteTargetState } from '../../../src/offsite/state.js';
import { bucketKeys, offsiteWorkspace, vaultDigest } from './push-helpers.js';

let s3: S3Server;
let ws: Workspace | undefined;
let n = 0;
let bucket = '';
beforeAll(async () => {
  s3 = await startS3();
}, 30_000);
afterAll(() => s3.stop());
afterEach(() => ws?.cleanup());

/** A fresh bucket per test (s3rver keeps one data folder for the file). */
async function freshBucket(): Promise<string> {
  bucket = `bkt-push-${++n}`;
  await s3.createBucket(bucket);
  return bucket;
}

const state = (vault: string): OffsiteTargetState =>
  (JSON.parse(readFileSync(path.join(vault, '.permafrost-offsite.json'), 'utf8')) as OffsiteState).targets.t1!;

describe('offsite push', () => {
  it('uploads every snapshot as on disk, parts then signature then manifest, the runbook, Object Lock headers on every object; a second push uploads nothing', async () => {
    const b = await freshBucket();
    s3.setFaults({ lockEnabled: [b] });
    const w = offsiteWorkspace(s3, { bucket: b, lock: { mode: 'governance', days: 7 } });
    ws = w;
    const a = fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    const c = fakeSnapshot(w.vault, '2026-12-01T11:40:00Z');
    writeFileSync(path.join(w.vault, c.id, 'manifest.json.sig'), 'a detached signature');
    const before = vaultDigest(w.vault);
    const since = s3.requests().length;
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`pushed 2 snapshots (${a.id}, ${c.id})`);
    expect(r.stdout).toContain(`newest complete: ${c.id}`);
    // The bucket mirrors the vault folder byte for byte.
    const keys = await bucketKeys(s3, b);
    for (const [rel] of Object.entries(before)) expect(keys[`pf/${rel}`], rel).toBeDefined();
    expect(Object.keys(keys).sort()).toEqual(
      Object.keys(before)
        .map((k) => `pf/${k}`)
        .sort(),
    );
    // Per snapshot: the part, then the signature, then the manifest last; every object locked.
    const puts = s3
      .requests()
      .slice(since)
      .filter((q) => q.method === 'PUT' && q.status === 200);
    const order = puts.filter((q) => q.path.includes(c.id)).map((q) => path.basename(q.path));
    expect(order).toEqual(['database.pgdump.gpg', 'manifest.json.sig', 'manifest.json']);
    expect(puts.map((q) => path.basename(q.path)).indexOf('manifest.json')).toBeGreaterThan(
      puts.map((q) => path.basename(q.path)).indexOf('database.pgdump.gpg'),
    );
    for (const q of puts) {
      expect(q.headers['x-amz-object-lock-mode'], q.path).toBe('GOVERNANCE');
      const until = Date.parse(q.headers['x-amz-object-lock-retain-until-date'] ?? '');
      expect(until - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
      expect(q.headers['x-amz-checksum-sha256'], q.path).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    }
    const st = state(w.vault);
    expect(st).toMatchObject({ newestComplete: { id: c.id }, lastError: null, failingSince: null, objects: Object.keys(keys).length });
    expect(st.bytes).toBe(Object.values(keys).reduce((x, y) => x + y, 0));
    expect(vaultDigest(w.vault)).toEqual(before);

    const since2 = s3.requests().length;
    const again = await runCli(['--config', w.configFile, 'offsite', 'push']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing new to push; 0 file(s)');
    expect(
      s3
        .requests()
        .slice(since2)
        .filter((q) => q.method === 'PUT' || q.method === 'POST'),
    ).toEqual([]);
  }, 120_000);

  it('resumes: a file already in the bucket at its size is not uploaded again; a snapshot without its manifest there is pushed', async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b });
    ws = w;
    const a = fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    // What an interrupted push leaves: the part there, no manifest.
    const c = s3.client();
    await c.send(
      new PutObjectCommand({
        Bucket: b,
        Key: `pf/${a.id}/database.pgdump.gpg`,
        Body: readFileSync(path.join(w.vault, a.id, 'database.pgdump.gpg')),
      }),
    );
    c.destroy();
    const since = s3.requests().length;
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('1 already there');
    const puts = s3
      .requests()
      .slice(since)
      .filter((q) => q.method === 'PUT');
    expect(puts.map((q) => q.path)).toEqual([`/${b}/pf/${a.id}/manifest.json`, `/${b}/pf/RESTORE.md`]);
  }, 60_000);

  it('an id pushes that snapshot with its delta chain; "all" every snapshot the bucket lacks', async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b });
    ws = w;
    const old = fakeSnapshot(w.vault, '2026-12-01T08:40:00Z');
    const base = fakeSnapshot(w.vault, '2026-12-01T09:40:00Z', null);
    const d1 = fakeSnapshot(w.vault, '2026-12-01T10:40:00Z', base);
    const d2 = fakeSnapshot(w.vault, '2026-12-01T11:40:00Z', d1);
    const one = await runCli(['--config', w.configFile, 'offsite', 'push', d2.id]);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(`pushed 3 snapshots (${base.id}, ${d1.id}, ${d2.id})`);
    const missing = await runCli(['--config', w.configFile, 'offsite', 'push', '2020-01-01T00-00-00Z']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/snapshot 2020-01-01T00-00-00Z is not in the vault/);
    // The default pushes only what is newer than the bucket's newest: the old one stays out.
    expect((await runCli(['--config', w.configFile, 'offsite', 'push'])).stdout).toContain('nothing new to push');
    const all = await runCli(['--config', w.configFile, 'offsite', 'push', 'all', '--target', 't1']);
    expect(all.stdout).toContain(`pushed 1 snapshot (${old.id})`);
    const unknown = await runCli(['--config', w.configFile, 'offsite', 'push', '--target', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no offsite target is named nope');
  }, 120_000);

  it('a part that no longer matches its manifest (same size): that snapshot is not pushed, no manifest goes up, the others are; exit 3', async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b });
    ws = w;
    const bad = fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    const good = fakeSnapshot(w.vault, '2026-12-01T11:40:00Z');
    const part = path.join(w.vault, bad.id, 'database.pgdump.gpg');
    const text = readFileSync(part, 'utf8');
    writeFileSync(part, text.replace('database', 'DATABASE'));
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain(
      `warning: offsite target t1 (s3://${b}/pf/): snapshot ${bad.id} was not pushed: ${part} differs from its manifest`,
    );
    expect(r.stderr).toMatch(/permafrost: 1 snapshot\(s\) were not pushed because the vault's copy does not match its manifest/);
    expect(r.stdout).toContain(`pushed 1 snapshot (${good.id})`);
    const keys = Object.keys(await bucketKeys(s3, b));
    expect(keys.filter((k) => k.includes(bad.id))).toEqual([]);
    expect(keys).toContain(`pf/${good.id}/manifest.json`);
  }, 60_000);

  it("retention on the target: keeps the target's policy and every chain a kept delta needs, deletes the rest only once past its lock", async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b, keep: { last: 1 } });
    ws = w;
    const old = fakeSnapshot(w.vault, '2026-12-01T08:40:00Z');
    const base = fakeSnapshot(w.vault, '2026-12-01T09:40:00Z', null);
    const d1 = fakeSnapshot(w.vault, '2026-12-01T10:40:00Z', base);
    // Foreign and hostile keys beside permafrost's: never read, never deleted.
    const c = s3.client();
    const hostile = ['pf/../escape', 'pf/notes.txt', `pf/${old.id}/../../x`, `pf/${old.id}/extra-file`, 'other/thing'];
    for (const Key of hostile) await c.send(new PutObjectCommand({ Bucket: b, Key, Body: 'x' }));
    c.destroy();
    const r = await runCli(['--config', w.configFile, 'offsite', 'push', 'all']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`keep: 2 kept, 1 deleted (${old.id})`);
    expect(r.stderr).toMatch(/holds \d key\(s\) that are not permafrost's; they are left alone/);
    const keys = Object.keys(await bucketKeys(s3, b));
    expect(keys.filter((k) => k.includes(old.id) && !hostile.includes(k))).toEqual([]);
    expect(keys.filter((k) => k.includes(d1.id) || k.includes(base.id))).toHaveLength(5); // base: schema, rows, manifest; delta: delta, manifest
    // s3rver normalises `..` in paths on its side; whatever it stored of them is still there.
    for (const k of ['pf/notes.txt', `pf/${old.id}/extra-file`, 'other/thing']) expect(keys).toContain(k);
    expect(state(w.vault).lockedDeletes).toBe(0);
  }, 120_000);

  it('a delete the bucket refuses (a lock in force) is a warning and counted, never a failure; the next push tries again once', async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b, keep: { last: 1 } });
    ws = w;
    const old = fakeSnapshot(w.vault, '2026-12-01T08:40:00Z');
    fakeSnapshot(w.vault, '2026-12-01T09:40:00Z');
    s3.setFaults({ refuseDelete: [b] });
    for (const round of [1, 2]) {
      const since = s3.requests().length;
      const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(`warning: offsite target t1 .* refused to delete snapshot ${old.id} .*it stays until its lock passes`),
      );
      expect(r.stdout).toContain('1 refused by the lock');
      expect(state(w.vault).lockedDeletes, `round ${round}`).toBe(1);
      // Its two files, each tried once (manifest first): no retry loop.
      const deletes = s3
        .requests()
        .slice(since)
        .filter((q) => q.method === 'DELETE');
      expect(deletes.map((q) => path.basename(q.path))).toEqual(['manifest.json', 'database.pgdump.gpg']);
    }
    s3.setFaults({});
    expect(Object.keys(await bucketKeys(s3, b)).filter((k) => k.includes(old.id))).toHaveLength(2);
  }, 90_000);

  it('with a lock, a snapshot due for deletion stays until its lock date has passed', async () => {
    const b = await freshBucket();
    s3.setFaults({ lockEnabled: [b] });
    const w = offsiteWorkspace(s3, { bucket: b, keep: { last: 1 }, lock: { mode: 'compliance', days: 3 } });
    ws = w;
    const old = fakeSnapshot(w.vault, '2026-12-01T08:40:00Z');
    fakeSnapshot(w.vault, '2026-12-01T09:40:00Z');
    const since = s3.requests().length;
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/keep: 1 kept, 0 deleted, 1 due but locked until 20\d\d-/);
    expect(Object.keys(await bucketKeys(s3, b)).some((k) => k.includes(old.id))).toBe(true);
    expect(
      s3
        .requests()
        .slice(since)
        .filter((q) => q.method === 'DELETE'),
    ).toEqual([]);
  }, 60_000);
});
