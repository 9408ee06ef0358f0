/**
 * Issue 23 item 4: an offsite target is watched like a device. Its failed last push and its
 * staleness (no snapshot for longer than its staleAfter) are alerted through the existing channels
 * once (offsite.failed, offsite.stale), not repeated while they last, and resolved once
 * (offsite.resolved) when the target holds the newest snapshot again; the alert state shows in
 * /metrics as a failing condition. The runs that watch: backup, verify and check (CLI and daemon).
 *
 * Backups push for real to an s3rver on loopback (a push that fails because the server is gone is
 * a real one too); where a test needs a state no real push makes on demand (a failure with a given
 * sentence, a lag without an error), it writes offsite/state.ts's file with recordOffsiteTarget,
 * as a push writes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordOffsiteTarget, type OffsiteTargetState } from '../../../src/offsite/state.js';
import { openVault } from '../../../src/vault/layout.js';
import { makeWorkspace, runCli, type Workspace } from '../../harness/env.js';
import { startSink, type Sink } from '../../harness/http-sinks.js';
import { parsePromText, sampleValue } from '../../harness/prom-text.js';
import { clusterPerFile } from '../../harness/suite.js';
import { fakeSnapshot } from '../../harness/fake-snapshot.js';
import { startS3, type S3Server } from '../../harness/s3.js';

const cluster = clusterPerFile('offwatch');

describe('offsite alerts through the existing channels', () => {
  let ws: Workspace;
  let hook: Sink;
  let s3: S3Server;
  beforeAll(async () => {
    ws = makeWorkspace(cluster.get(), 'offwatch');
    hook = await startSink();
    s3 = await startS3();
    await s3.createBucket('pf-alerts');
  }, 60_000);
  afterAll(async () => {
    ws?.cleanup();
    s3?.stop();
    await hook?.close();
  });

  const config = (staleAfter?: number) =>
    ws.writeConfig({
      vault: { keep: { last: 20 } },
      extra: {
        notify: { webhook: { url: `${hook.url}/hook` }, retries: 0, timeoutMs: 2000 },
        offsite: [
          {
            name: 'b2',
            endpoint: s3.endpoint,
            pathStyle: true,
            bucket: 'pf-alerts',
            credentials: s3.keyFiles(ws.dir),
            ...(staleAfter ? { staleAfter } : {}),
          },
        ],
      },
    });
  const cli = async (...args: string[]) => runCli(['--config', ws.configFile, ...args]);
  const newestId = async (): Promise<string> => (JSON.parse((await cli('list', '--json')).stdout) as Array<{ id: string }>)[0]!.id;
  const record = (over: Partial<OffsiteTargetState>) =>
    recordOffsiteTarget(openVault(ws.vault), 'b2', (prev) => ({ ...prev, lastAttemptAt: new Date().toISOString(), ...over }));
  const pushedNewest = async () => {
    const at = new Date().toISOString();
    await record({ newestComplete: { id: await newestId(), pushedAt: at }, lastSuccessAt: at, lastError: null, failingSince: null });
  };
  const events = (): string[] => hook.received.map((r) => (JSON.parse(r.body) as { event: string }).event);
  const failing = async (): Promise<number> =>
    sampleValue(parsePromText((await cli('metrics')).stdout), 'permafrost_condition_failing', { condition: 'offsite:b2' });

  it('a failed push alerts offsite.failed once with its sentence; a repeat stays quiet; a good push resolves once', async () => {
    config();
    expect((await cli('backup')).code).toBe(0);
    await pushedNewest();
    expect(events()).toEqual([]);

    const since = new Date().toISOString();
    await record({ lastError: 'The bucket pf-alerts does not exist; create it or fix offsite[b2].bucket.', failingSince: since });
    expect((await cli('check')).code).toBe(0);
    expect(events()).toEqual(['offsite.failed']);
    const alert = JSON.parse(hook.received[0]!.body) as { message: string; error: string };
    expect(alert.error).toMatch(/^the last push to offsite target b2 \(s3:\/\/pf-alerts\/\) .*failed: The bucket pf-alerts does not exist/);
    expect(alert.message).toMatch(/: push to offsite target b2 failed: /);
    expect(await failing()).toBe(1);
    const m = parsePromText((await cli('metrics')).stdout);
    expect(sampleValue(m, 'permafrost_offsite_up', { target: 'b2' })).toBe(0);
    expect(sampleValue(m, 'permafrost_offsite_missing_snapshots', { target: 'b2' })).toBe(0);

    // Still failing, after a backup whose push really fails (the server is gone) and a check: nothing more is sent.
    s3.kill();
    const down = await cli('backup');
    expect(down.code).toBe(0);
    expect(down.stderr).toMatch(/warning: the snapshot is safe in vault.dir, but pushing it to offsite target b2 .*could not be reached/);
    expect((await cli('check')).code).toBe(0);
    expect(events()).toEqual(['offsite.failed']);

    // The server back (on a new port): the next backup's push holds the newest snapshot again, resolved once.
    s3 = await s3.restart();
    config();
    expect((await cli('backup')).code).toBe(0);
    expect(events()).toEqual(['offsite.failed', 'offsite.resolved']);
    expect((JSON.parse(hook.received[1]!.body) as { message: string }).message).toMatch(
      /: offsite target b2 is up to date again \(holds \d{4}-\d\d-\d\dT[\d-]+Z\)\.$/,
    );
    expect(await failing()).toBe(0);
  });

  it('a target that lacks a snapshot for longer than its staleAfter alerts offsite.stale at the next check; resolved once it holds it', async () => {
    hook.received.length = 0;
    config(1);
    await pushedNewest();
    // A snapshot the target lacks with no failed push (made here without a backup, whose push would take it along).
    fakeSnapshot(ws.vault, new Date().toISOString());
    expect((await cli('check')).code).toBe(0);
    // Not in the bucket yet, but for less than staleAfter: nothing to say.
    expect(events()).toEqual([]);
    await new Promise((res) => setTimeout(res, 1500));
    expect((await cli('check')).code).toBe(0);
    expect(events()).toEqual(['offsite.stale']);
    expect((JSON.parse(hook.received[0]!.body) as { error: string }).error).toMatch(
      /^offsite target b2 \(s3:\/\/pf-alerts\/\) lacks 1 snapshot newer than its newest, .*longer than 1 s: run `permafrost offsite push --target b2`/,
    );
    await pushedNewest();
    expect((await cli('check')).code).toBe(0);
    expect(events()).toEqual(['offsite.stale', 'offsite.resolved']);
  });

  it('status, the page data and the state file agree on what the target holds', async () => {
    const s = JSON.parse((await cli('status', '--json')).stdout) as { offsite: Array<Record<string, unknown>> };
    expect(s.offsite).toHaveLength(1);
    expect(s.offsite[0]).toMatchObject({
      name: 'b2',
      missing: 0,
      lastError: null,
      lagPending: false,
      newestComplete: { id: await newestId() },
    });
    await record({ bytes: 123_456, objects: 9 });
    const m = parsePromText((await cli('metrics')).stdout);
    expect(sampleValue(m, 'permafrost_offsite_up', { target: 'b2' })).toBe(1);
    expect(sampleValue(m, 'permafrost_offsite_stale', { target: 'b2' })).toBe(0);
    expect(sampleValue(m, 'permafrost_offsite_bytes', { target: 'b2' })).toBe(123_456);
    expect(sampleValue(m, 'permafrost_offsite_objects', { target: 'b2' })).toBe(9);
    expect(sampleValue(m, 'permafrost_offsite_lag_seconds', { target: 'b2' })).toBeGreaterThanOrEqual(0);
    expect(sampleValue(m, 'permafrost_offsite_last_success_timestamp_seconds', { target: 'b2' })).toBeGreaterThan(Date.now() / 1000 - 600);
    const human = await cli('status');
    expect(human.stdout).toMatch(/offsite target b2 \(s3:\/\/pf-alerts\/\): newest \S+, [\d.]+ KiB in 9 objects, lag \d+ ?\w+/);
  });
});
