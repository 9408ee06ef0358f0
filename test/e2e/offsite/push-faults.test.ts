import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorSentence, runCli, startCli, type Workspace } from '../../harness/env.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { startS3, type S3Server } from '../../harness/s3.js';
import type { OffsiteState } from '../../../src/offsite/state.js';
import { bigSnapshot, bucketKeys, offsiteWorkspace, vaultDigest } from './push-helpers.js';

let s3: S3Server;
let ws: Workspace | undefined;
let n = 0;
beforeAll(async () => {
  s3 = await startS3();
}, 30_000);
afterAll(() => s3.stop());
afterEach(() => ws?.cleanup());

async function freshBucket(): Promise<string> {
  const b = `bkt-fault-${++n}`;
  await s3.createBucket(b);
  return b;
}

const state = (vault: string) =>
  (JSON.parse(readFileSync(path.join(vault, '.permafrost-offsite.json'), 'utf8')) as OffsiteState).targets.t1!;

/** The `offsite t1` line of `doctor --json`. */
async function doctorLine(configFile: string): Promise<{ status: string; message: string; fix?: string }> {
  const r = await runCli(['--config', configFile, 'doctor', '--json']);
  const report = JSON.parse(r.stdout) as { lines: Array<{ check: string; status: string; message: string; fix?: string }> };
  return report.lines.find((l) => l.check === 'offsite t1')!;
}

/** A failed run: the documented exit code, one sentence on stderr and nothing else. */
function oneSentence(r: { code: number | null; stderr: string }, code: number, re: RegExp): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
  expect(errorSentence(r.stderr)).toMatch(re);
}

describe('offsite push faults', () => {
  it('an unreachable endpoint: exit 1, one sentence, recorded as the target failing; doctor says so', async () => {
    const w = offsiteWorkspace(s3, { endpoint: 'http://127.0.0.1:9' });
    ws = w;
    fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    const before = vaultDigest(w.vault);
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    oneSentence(r, 1, /^offsite target t1 \(s3:\/\/bkt\/pf\/\) could not be reached \(ECONNREFUSED\).*check offsite\.endpoint/);
    expect(state(w.vault)).toMatchObject({ lastError: errorSentence(r.stderr), newestComplete: null, lastSuccessAt: null });
    expect(state(w.vault).failingSince).not.toBeNull();
    expect(vaultDigest(w.vault)).toEqual(before);
    const line = await doctorLine(w.configFile);
    expect(line).toMatchObject({ status: 'fail', fix: expect.stringMatching(/offsite\.endpoint/) });
  }, 120_000);

  it('wrong credentials: exit 2, one sentence naming the key files; the secret is in no output and no state', async () => {
    const b = await freshBucket();
    const secret = 'wrong-Secret-Kx93qZ-never-printed';
    const w = offsiteWorkspace(s3, { bucket: b }, { accessKeyId: 'AKIAWRONGKEY', secretAccessKey: secret });
    ws = w;
    fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    oneSentence(r, 2, /refused the credentials \(InvalidAccessKeyId\).*offsite\.credentials/);
    const line = await doctorLine(w.configFile);
    expect(line).toMatchObject({ status: 'fail', fix: expect.stringMatching(/key files/) });
    const json = await runCli(['--config', w.configFile, 'offsite', 'push', '--json']);
    for (const out of [
      r.stdout,
      r.stderr,
      json.stdout,
      json.stderr,
      JSON.stringify(line),
      readFileSync(path.join(w.vault, '.permafrost-offsite.json'), 'utf8'),
    ])
      expect(out).not.toContain(secret);
  }, 120_000);

  it('a missing bucket: exit 2, one sentence saying to create it; doctor says so', async () => {
    const w = offsiteWorkspace(s3, { bucket: 'no-such-bucket' });
    ws = w;
    fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    oneSentence(r, 2, /the bucket does not exist; create it/);
    expect(await doctorLine(w.configFile)).toMatchObject({ status: 'fail', fix: expect.stringMatching(/create the bucket/) });
  }, 120_000);

  it('a lock asked for a bucket without Object Lock: doctor FAILs with the fix, push refuses (exit 2) and uploads nothing', async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b, lock: { mode: 'compliance', days: 30 } });
    ws = w;
    fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    const line = await doctorLine(w.configFile);
    expect(line).toMatchObject({
      status: 'fail',
      message: expect.stringMatching(/has no Object Lock/),
      fix: expect.stringMatching(/Object Lock enabled/),
    });
    const since = s3.requests().length;
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    oneSentence(r, 2, /offsite\.lock is set but bucket bkt-fault-\d+ has no Object Lock/);
    expect(
      s3
        .requests()
        .slice(since)
        .filter((q) => q.method === 'PUT' || q.method === 'POST'),
    ).toEqual([]);
    expect(await bucketKeys(s3, b)).toEqual({});
    // With Object Lock on the bucket, the same target is fine.
    s3.setFaults({ lockEnabled: [b] });
    expect(await doctorLine(w.configFile)).toMatchObject({
      status: 'ok',
      message: expect.stringMatching(/with Object Lock \(compliance, 30 days/),
    });
    s3.setFaults({});
  }, 120_000);

  it('the server killed mid-multipart: exit 1, one sentence, nothing listed as complete, the vault untouched; the next run after a restart completes', async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b });
    ws = w;
    const m = bigSnapshot(w.vault, '2026-12-01T10:40:00Z', 96 * 1024 * 1024 + 12345);
    const before = vaultDigest(w.vault);
    const since = s3.requests().length;
    const run = startCli(['--config', w.configFile, 'offsite', 'push']);
    // Kill -9 once the first 16 MiB part has been answered: the upload is under way.
    const deadline = Date.now() + 60_000;
    while (
      !s3
        .requests()
        .slice(since)
        .some((q) => q.query.includes('partNumber') && q.status === 200)
    ) {
      if (Date.now() > deadline) throw new Error('no part was uploaded within 60 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    s3.kill();
    const r = await run.result;
    oneSentence(r, 1, /could not be reached|failed while uploading/);
    expect(vaultDigest(w.vault)).toEqual(before);
    s3 = await s3.restart();
    const keys = await bucketKeys(s3, b);
    expect(Object.keys(keys).filter((k) => k.startsWith(`pf/${m.id}/`))).toEqual([]);
    expect(state(w.vault)).toMatchObject({ newestComplete: null, lastError: errorSentence(r.stderr) });
    w.target({ endpoint: s3.endpoint });
    const again = await runCli(['--config', w.configFile, 'offsite', 'push']);
    expect(again.code, again.stderr).toBe(0);
    expect((await bucketKeys(s3, b))[`pf/${m.id}/database.pgdump.gpg`]).toBe(m.files[0]!.bytes);
    expect(state(w.vault)).toMatchObject({ newestComplete: { id: m.id }, lastError: null, failingSince: null });
  }, 240_000);

  it('throttling (503 SlowDown) is retried and the push completes', async () => {
    const b = await freshBucket();
    const w = offsiteWorkspace(s3, { bucket: b });
    ws = w;
    const m = fakeSnapshot(w.vault, '2026-12-01T10:40:00Z');
    const since = s3.requests().length;
    s3.setFaults({ slowDown: 3 });
    const r = await runCli(['--config', w.configFile, 'offsite', 'push']);
    expect(r.code, r.stderr).toBe(0);
    expect(
      s3
        .requests()
        .slice(since)
        .filter((q) => q.status === 503),
    ).toHaveLength(3);
    expect(Object.keys(await bucketKeys(s3, b))).toContain(`pf/${m.id}/manifest.json`);
    s3.setFaults({});
  }, 120_000);
});
